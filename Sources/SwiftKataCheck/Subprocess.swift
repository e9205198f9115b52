import Glibc

/// Runs `executable` with `arguments` (stdin /dev/null, stdout and stderr captured together, C locale)
/// and returns its exit status and output; nil when it cannot start or runs longer than `timeoutMilliseconds`
/// (then it is killed).
func runProcess(_ executable: String, _ arguments: [String], timeoutMilliseconds: Int = 5_000) -> CommandOutput? {
    var pipeEnds: [Int32] = [-1, -1]
    guard pipe(&pipeEnds) == 0 else { return nil }
    let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
    _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
    posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
    posix_spawn_file_actions_addclose(&actions, writeEnd)

    let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { (text: String) in strdup(text) } + [nil]
    let envp: [UnsafeMutablePointer<CChar>?] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"].map { (text: String) in strdup(text) } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    var pid = pid_t()
    let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
    close(writeEnd)
    guard spawned == 0 else {
        close(readEnd)
        return nil
    }
    defer { close(readEnd) }

    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    let deadline = ContinuousClock.now + .milliseconds(timeoutMilliseconds)
    var timedOut = false
    while true {
        let left = deadline - ContinuousClock.now
        guard left > .zero else { timedOut = true; break }
        var entry = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&entry, 1, Int32(left / .milliseconds(1)) + 1)
        if ready < 0 && errno == EINTR { continue }
        guard ready > 0 else { timedOut = ready == 0; break }
        let count = read(readEnd, &chunk, chunk.count)
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { break }
        if output.count < 1 << 20 { output.append(contentsOf: chunk[0..<count]) }
    }
    if timedOut { kill(pid, SIGKILL) }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    guard !timedOut else { return nil }
    // WIFEXITED / WEXITSTATUS; a signal death reads as 128 + signal, as in a shell.
    let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return CommandOutput(status: code, output: String(decoding: output, as: UTF8.self))
}
