import Testing

@testable import Shim

@Suite("Pod cgroup")
struct PodCgroupTests {
    @Test func cgroupfsPathsAreKept() {
        #expect(PodCgroup(cgroupsPath: "/kubepods/besteffort/pod1234/abcd")?.path == "/kubepods/besteffort/pod1234/abcd")
        #expect(PodCgroup(cgroupsPath: "/default//x/")?.path == "/default/x")
    }

    @Test func systemdPathsBecomeSliceScopes() {
        #expect(
            PodCgroup(cgroupsPath: "kubepods-besteffort-pod1234.slice:cri-containerd:abcd")?.path
                == "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/cri-containerd-abcd.scope")
        #expect(PodCgroup(cgroupsPath: ":cri-containerd:abcd")?.path == "/system.slice/cri-containerd-abcd.scope")
    }

    @Test func relativeEmptyOrEscapingPathsAreRefused() {
        for bad in ["", "relative/path", "/", "/a/../../etc", "/a/./b", "slice:x:../../y"] {
            #expect(PodCgroup(cgroupsPath: bad) == nil, "\(bad)")
        }
    }
}
