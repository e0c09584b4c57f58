-- Used by test_host.c: many concurrent calls parked in tikd.sleep.
function sleeper(id, secs)
    tikd.sleep(secs)
    return id
end

function sleep_then_fail(secs)
    tikd.sleep(secs)
    error("failed after waking")
end
