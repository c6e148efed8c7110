// The libFuzzer side of the SharpFuzz harness (fuzz/Raft.Fuzz, docs/fuzzing.md).
//
// libFuzzer runs inside this native process; the parsers run in a .NET process (Raft.Fuzz <target>) that SharpFuzz's
// Fuzzer.LibFuzzer.Run drives. The two talk as SharpFuzz 2.x expects:
//   * one System V shared memory segment of COVERAGE_BYTES + INPUT_BYTES: the .NET side's instrumented branches bump
//     bytes of the first part (AFL-style edge counters), the input lies in the second part;
//   * a control pipe (this process writes each input's length, int32) and a status pipe (the child writes 0 once when
//     it is ready, then one int32 per input: 0 when the action returned, non-zero when an exception escaped it);
//   * the environment variables __LIBFUZZER_SHM_ID, __LIBFUZZER_CONTROL_PIPE_ID and __LIBFUZZER_STATUS_PIPE_ID name them.
// After each input the coverage bytes are copied into an array in the __libfuzzer_extra_counters section, which
// libFuzzer reads as extra coverage counters. A crash in the child (a reported exception, its death, a resident set over
// RAFT_FUZZ_RSS_LIMIT_MB) is turned into abort() here, so libFuzzer writes the input as a crash artifact.
//
// The child's command line comes from the environment (libFuzzer owns argv): RAFT_FUZZ_EXEC (the executable) and
// RAFT_FUZZ_ARGS (its arguments, separated by single spaces; none may contain a space).
//
// Build: clang-14 -O2 -fsanitize=fuzzer raft-libfuzzer-driver.c -o raft-libfuzzer-driver   (scripts/fuzz.sh does)

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

enum { COVERAGE_BYTES = 1 << 16, INPUT_BYTES = 1 << 20, MAX_ARGS = 64 };

// libFuzzer collects every byte of this section as a coverage counter (its "extra counters").
__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t g_counters[COVERAGE_BYTES];

static int g_shm_id = -1;
static uint8_t *g_shm;
static int g_control_fd = -1; // we write input lengths
static int g_status_fd = -1;  // we read statuses
static pid_t g_child = -1;
static long g_rss_limit_kb;

static void fail(const char *what)
{
    fprintf(stderr, "raft-libfuzzer-driver: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void remove_segment(void)
{
    if (g_shm_id >= 0) shmctl(g_shm_id, IPC_RMID, NULL);
}

static void kill_child(void)
{
    if (g_child > 0) kill(g_child, SIGKILL);
}

// Reads exactly n bytes; returns 0 on success, -1 at end of file (the child is gone).
static int read_exact(int fd, void *buffer, size_t n)
{
    uint8_t *p = buffer;
    while (n > 0)
    {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) fail("read from the .NET process");
        if (r == 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void write_exact(int fd, const void *buffer, size_t n)
{
    const uint8_t *p = buffer;
    while (n > 0)
    {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) fail("write to the .NET process");
        p += w;
        n -= (size_t)w;
    }
}

// Says why the child is gone (exit code or signal) and aborts, which libFuzzer reports as a crash on this input.
static void child_died(void)
{
    int status = 0;
    if (waitpid(g_child, &status, 0) == g_child)
    {
        if (WIFSIGNALED(status)) fprintf(stderr, "raft-libfuzzer-driver: the .NET process died of signal %d.\n", WTERMSIG(status));
        else fprintf(stderr, "raft-libfuzzer-driver: the .NET process exited with code %d.\n", WEXITSTATUS(status));
    }
    else fprintf(stderr, "raft-libfuzzer-driver: the .NET process is gone.\n");
    g_child = -1;
    abort();
}

// The child's resident set in KiB (from /proc/PID/statm), or -1 when it cannot be read.
static long child_rss_kb(void)
{
    char path[64], text[128];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)g_child);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return -1;
    text[n] = 0;
    long size_pages = 0, resident_pages = 0;
    if (sscanf(text, "%ld %ld", &size_pages, &resident_pages) != 2) return -1;
    return resident_pages * (sysconf(_SC_PAGESIZE) / 1024);
}

static void set_env_int(const char *name, int value)
{
    char text[16];
    snprintf(text, sizeof text, "%d", value);
    if (setenv(name, text, 1) != 0) fail("setenv");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *exec = getenv("RAFT_FUZZ_EXEC");
    if (exec == NULL || *exec == 0)
    {
        fprintf(stderr, "raft-libfuzzer-driver: set RAFT_FUZZ_EXEC to the harness executable (and RAFT_FUZZ_ARGS to its arguments), e.g. "
                        "RAFT_FUZZ_EXEC=out/Raft.Fuzz RAFT_FUZZ_ARGS=safetensors; scripts/fuzz.sh does.\n");
        exit(1);
    }
    const char *limit = getenv("RAFT_FUZZ_RSS_LIMIT_MB");
    g_rss_limit_kb = (limit != NULL && *limit != 0 ? atol(limit) : 2048) * 1024;

    // argv of the child: RAFT_FUZZ_EXEC, then RAFT_FUZZ_ARGS split at spaces
    static char *child_argv[MAX_ARGS + 2];
    int n = 0;
    child_argv[n++] = (char *)exec;
    const char *args = getenv("RAFT_FUZZ_ARGS");
    char *copy = strdup(args != NULL ? args : "");
    for (char *save = NULL, *word = strtok_r(copy, " ", &save); word != NULL; word = strtok_r(NULL, " ", &save))
    {
        if (n > MAX_ARGS)
        {
            fprintf(stderr, "raft-libfuzzer-driver: RAFT_FUZZ_ARGS has more than %d arguments.\n", MAX_ARGS);
            exit(1);
        }
        child_argv[n++] = word;
    }
    child_argv[n] = NULL;

    g_shm_id = shmget(IPC_PRIVATE, COVERAGE_BYTES + INPUT_BYTES, IPC_CREAT | IPC_EXCL | 0600);
    if (g_shm_id < 0) fail("shmget");
    atexit(remove_segment);
    g_shm = shmat(g_shm_id, NULL, 0);
    if (g_shm == (void *)-1) fail("shmat");

    int control[2], status[2]; // [0] read end, [1] write end
    if (pipe2(control, O_CLOEXEC) != 0 || pipe2(status, O_CLOEXEC) != 0) fail("pipe2");

    pid_t parent = getpid();
    g_child = fork();
    if (g_child < 0) fail("fork");
    if (g_child == 0)
    {
        // The child keeps the control pipe's read end and the status pipe's write end (across exec: no FD_CLOEXEC)
        // and dies with this process, whichever way it ends (libFuzzer's timeouts end it with _Exit).
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(1);
        if (fcntl(control[0], F_SETFD, 0) != 0 || fcntl(status[1], F_SETFD, 0) != 0) fail("fcntl");
        set_env_int("__LIBFUZZER_SHM_ID", g_shm_id);
        set_env_int("__LIBFUZZER_CONTROL_PIPE_ID", control[0]);
        set_env_int("__LIBFUZZER_STATUS_PIPE_ID", status[1]);
        execvp(exec, child_argv);
        fprintf(stderr, "raft-libfuzzer-driver: cannot start %s: %s\n", exec, strerror(errno));
        _exit(127);
    }
    close(control[0]);
    close(status[1]);
    g_control_fd = control[1];
    g_status_fd = status[0];
    atexit(kill_child);
    signal(SIGPIPE, SIG_IGN); // a dead child shows as EPIPE / end of file, handled above

    int32_t ready;
    if (read_exact(g_status_fd, &ready, sizeof ready) != 0)
    {
        fprintf(stderr, "raft-libfuzzer-driver: %s ended before it was ready (is it a Raft.Fuzz target?).\n", exec);
        child_died();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    // SharpFuzz's input area holds 1 MiB; a longer input is skipped (run with -max_len at most 1048576).
    if (size > INPUT_BYTES) return 0;
    memset(g_shm, 0, COVERAGE_BYTES);
    memcpy(g_shm + COVERAGE_BYTES, data, size);
    int32_t length = (int32_t)size;
    write_exact(g_control_fd, &length, sizeof length);

    int32_t status;
    if (read_exact(g_status_fd, &status, sizeof status) != 0) child_died();
    memcpy(g_counters, g_shm, COVERAGE_BYTES);
    if (status != 0)
    {
        fprintf(stderr, "raft-libfuzzer-driver: the target threw (its exception is printed above).\n");
        abort();
    }
    long rss = child_rss_kb();
    if (rss > g_rss_limit_kb)
    {
        fprintf(stderr, "raft-libfuzzer-driver: the .NET process's resident set is %ld MB, over RAFT_FUZZ_RSS_LIMIT_MB = %ld.\n",
                rss / 1024, g_rss_limit_kb / 1024);
        abort();
    }
    return 0;
}
