-- rule tests are not rules: this file must not be loaded as one
error("a *_test.lua file was loaded as a rule")
