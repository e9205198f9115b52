import Glibc
import Shim

// containerd's runtime v2 shim for `io.containerd.swiftkata.v2`: one VM per pod.
exit(await ShimMain.run(arguments: Array(CommandLine.arguments.dropFirst())))
