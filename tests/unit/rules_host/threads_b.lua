-- Used by test_host.c: a second file's calls never run in the first's threads.
function which()
    return tostring(coroutine.running())
end
