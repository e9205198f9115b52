// Fuzz driver for the ttrpc frame parser and request dispatch.
//
// Built with `-sanitize=fuzzer -D FUZZING` (see `make fuzz`), libFuzzer's main runs the target.
// Built normally, it replays inputs: each argument is a file or a directory of files, and every
// input is run once — CI uses this to replay the seed corpus and any crash reproducers.
#if canImport(Glibc)
    import Glibc
#endif

#if FUZZING
    // SwiftPM links this file's code as the program's entry point, so hand over to libFuzzer's driver.
    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(
        LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            FuzzTarget.run(UnsafeRawBufferPointer(start: data, count: size))
            return 0
        })
#else
    var inputs = 0
    for path in CommandLine.arguments.dropFirst() {
        for file in filesUnder(path) {
            guard let bytes = readFile(file) else {
                print("cannot read \(file)")
                exit(1)
            }
            bytes.withUnsafeBytes { FuzzTarget.run($0) }
            inputs += 1
        }
    }
    print("replayed \(inputs) inputs without a crash")
#endif

func filesUnder(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [path] }
    defer { closedir(dir) }
    var files: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        if name != "." && name != ".." { files.append("\(path)/\(name)") }
    }
    return files.sorted()
}

func readFile(_ path: String) -> [UInt8]? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        if count <= 0 { break }
        bytes.append(contentsOf: buffer[0..<count])
    }
    return bytes
}
