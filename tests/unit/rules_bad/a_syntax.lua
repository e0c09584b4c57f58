-- a syntax error on line 3
function broken(
    x = = 1
end
