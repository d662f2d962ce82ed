// e2e target: leaks a known number of blocks, then starts /bin/true the way
// CPython's subprocess (3.10+) and many launchers do: vfork() + execv(), or fork() + execv().
// Usage: e2e_spawn_child vfork|fork [N]
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

static void* volatile kept[100000];

__attribute__((noinline)) void keep_blocks(int n) {
    for (int i = 0; i < n; ++i) {
        kept[i] = malloc(200);  // SPAWN-LEAK
        memset(kept[i], 5, 200);
    }
}

int main(int argc, char** argv) {
    const char* mode = argc > 1 ? argv[1] : "vfork";
    int n = argc > 2 ? atoi(argv[2]) : 1000;
    if (n > 100000) n = 100000;
    keep_blocks(n);
    char* child_argv[] = {const_cast<char*>("/bin/true"), nullptr};
    pid_t pid = strcmp(mode, "fork") == 0 ? fork() : vfork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        execv("/bin/true", child_argv);
        _exit(126);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("child status %d, kept %d\n", status, n);
    return 0;
}
