/* lua_deadline.c - a wall clock for rule calls (see lua_deadline.h).
 *
 * State shared with the signal handler is lock-free atomics: the handler
 * interrupts the loop thread itself, so it sees either the old or the new
 * value of each field, and every order of the stores below is safe:
 * `thread` is stored last on entry and first on exit. */
#include "lua_deadline.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../core/log.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

/* The signal: SIGURG, whose default action is to do nothing, so one that
 * arrives when no handler would matter is harmless (Go's runtime preempts
 * goroutines with it for the same reason). */
#define DEADLINE_SIGNAL SIGURG

/* After the hook is armed, how long a call may go on before the log says it
 * is stuck in C (it cannot be stopped there: see docs/rules.md). */
#define GRACE_NS (2 * 1000000000LL)

static struct {
    _Atomic(lua_State *) thread; /* running rule code now; NULL when none */
    _Atomic(lua_Hook) hook;
    atomic_llong deadline;
    atomic_llong armed_for; /* when the timer fires; 0: not armed */
    atomic_bool expired, warned;
    timer_t timer;
    int state; /* 0: not set up yet, 1: working, -1: no timer (logged once) */
    pid_t tid;
} wd;

/* The handler runs on this very thread, between any two instructions: the
 * loop's stores need only stay in program order for it (a compiler fence),
 * never a fence for other CPUs (which a plain atomic_store pays on every
 * call). */
#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v)                                                                                \
    do {                                                                                           \
        atomic_signal_fence(memory_order_seq_cst);                                                 \
        atomic_store_explicit(&(x), (v), memory_order_relaxed);                                    \
        atomic_signal_fence(memory_order_seq_cst);                                                 \
    } while (0)

static const char stuck_msg[] =
    "tikd: a rule call is still running in C 2 s after its time budget ran out "
    "(lua.call_time); the loop is blocked until it returns\n";

int64_t deadline_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Set the timer to fire at `at` (monotonic ns). Async-signal-safe. */
static void arm(int64_t at)
{
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)(at / 1000000000LL);
    its.it_value.tv_nsec = (long)(at % 1000000000LL);
    atomic_store(&wd.armed_for, at); /* first: the signal may come before settime returns */
    if (timer_settime(wd.timer, TIMER_ABSTIME, &its, NULL) != 0)
        atomic_store(&wd.armed_for, 0);
}

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    atomic_store(&wd.armed_for, 0);
    lua_State *L = atomic_load(&wd.thread);
    if (L) {
        int64_t now = deadline_now(), at = atomic_load(&wd.deadline);
        if (now < at) {
            arm(at);
        } else if (!atomic_load(&wd.expired)) {
            atomic_store(&wd.expired, true);
            lua_sethook(L, atomic_load(&wd.hook), LUA_MASKCOUNT, 1);
            arm(at + GRACE_NS);
        } else if (now < at + GRACE_NS) {
            arm(at + GRACE_NS);
        } else if (!atomic_exchange(&wd.warned, true)) {
            ssize_t w = write(STDERR_FILENO, stuck_msg, sizeof stuck_msg - 1);
            (void)w;
        }
    }
    errno = saved;
}

static bool setup(void)
{
    if (wd.state)
        return wd.state > 0;
    wd.state = -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = DEADLINE_SIGNAL;
    wd.tid = (pid_t)syscall(SYS_gettid);
    sev.sigev_notify_thread_id = wd.tid;
    if (sigaction(DEADLINE_SIGNAL, &sa, NULL) != 0 ||
        timer_create(CLOCK_MONOTONIC, &sev, &wd.timer) != 0) {
        TLOG(TLOG_WARN, "rules.no_wall_clock", LSTR("error", strerror(errno)),
             LSTR("effect", "rule calls are bounded by their instruction budgets only"));
        return false;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, DEADLINE_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    wd.state = 1;
    return true;
}

void deadline_enter(struct deadline_slice *s, lua_State *L, int64_t left_ns, lua_Hook hook)
{
    s->start_ns = deadline_now();
    s->deadline_ns = s->start_ns + (left_ns > 0 ? left_ns : 0);
    s->thread = L;
    s->saved_thread = LOAD(wd.thread);
    s->saved_deadline = LOAD(wd.deadline);
    s->saved_expired = LOAD(wd.expired);
    if (!setup())
        return;
    STORE(wd.thread, NULL);
    STORE(wd.hook, hook);
    STORE(wd.deadline, s->deadline_ns);
    STORE(wd.expired, false);
    STORE(wd.warned, false);
    STORE(wd.thread, L);
    int64_t armed = LOAD(wd.armed_for);
    if (armed == 0 || armed > s->deadline_ns)
        arm(s->deadline_ns);
}

lua_State *deadline_switch(lua_State *L)
{
    if (wd.state <= 0 || !LOAD(wd.thread))
        return NULL;
    atomic_signal_fence(memory_order_seq_cst);
    lua_State *was = atomic_exchange_explicit(&wd.thread, L, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    return was;
}

bool deadline_expired(void)
{
    return LOAD(wd.expired);
}

int64_t deadline_leave(struct deadline_slice *s)
{
    int64_t took = deadline_now() - s->start_ns;
    if (wd.state > 0) {
        STORE(wd.thread, NULL);
        STORE(wd.deadline, s->saved_deadline);
        STORE(wd.expired, s->saved_expired);
        STORE(wd.thread, s->saved_thread);
        int64_t armed = LOAD(wd.armed_for);
        if (s->saved_thread && (armed == 0 || armed > s->saved_deadline))
            arm(s->saved_deadline); /* the outer slice's time may be up already */
    }
    return took;
}
