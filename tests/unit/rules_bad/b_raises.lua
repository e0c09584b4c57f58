local ok = true
error("this rule refuses to load")
