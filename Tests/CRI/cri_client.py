"""A small client for containerd's CRI gRPC API (runtime.v1), with hand-written method stubs.

Each RPC is `client.<Method>(request)`; requests and responses are the `cri_subset_pb2` messages.
"""
import grpc

import cri_subset_pb2 as pb

# service -> [(method, request type, response type)]
_METHODS = {
    "runtime.v1.RuntimeService": [
        ("Version", pb.VersionRequest, pb.VersionResponse),
        ("Status", pb.StatusRequest, pb.StatusResponse),
        ("RunPodSandbox", pb.RunPodSandboxRequest, pb.RunPodSandboxResponse),
        ("StopPodSandbox", pb.StopPodSandboxRequest, pb.StopPodSandboxResponse),
        ("RemovePodSandbox", pb.RemovePodSandboxRequest, pb.RemovePodSandboxResponse),
        ("PodSandboxStatus", pb.PodSandboxStatusRequest, pb.PodSandboxStatusResponse),
        ("ListPodSandbox", pb.ListPodSandboxRequest, pb.ListPodSandboxResponse),
        ("CreateContainer", pb.CreateContainerRequest, pb.CreateContainerResponse),
        ("StartContainer", pb.StartContainerRequest, pb.StartContainerResponse),
        ("StopContainer", pb.StopContainerRequest, pb.StopContainerResponse),
        ("RemoveContainer", pb.RemoveContainerRequest, pb.RemoveContainerResponse),
        ("ListContainers", pb.ListContainersRequest, pb.ListContainersResponse),
        ("ContainerStatus", pb.ContainerStatusRequest, pb.ContainerStatusResponse),
        ("UpdateContainerResources", pb.UpdateContainerResourcesRequest, pb.UpdateContainerResourcesResponse),
        ("ExecSync", pb.ExecSyncRequest, pb.ExecSyncResponse),
        ("Exec", pb.ExecRequest, pb.ExecResponse),
        ("Attach", pb.AttachRequest, pb.AttachResponse),
        ("PortForward", pb.PortForwardRequest, pb.PortForwardResponse),
        ("ContainerStats", pb.ContainerStatsRequest, pb.ContainerStatsResponse),
        ("ListContainerStats", pb.ListContainerStatsRequest, pb.ListContainerStatsResponse),
        ("ListPodSandboxStats", pb.ListPodSandboxStatsRequest, pb.ListPodSandboxStatsResponse),
    ],
    "runtime.v1.ImageService": [
        ("ListImages", pb.ListImagesRequest, pb.ListImagesResponse),
        ("ImageStatus", pb.ImageStatusRequest, pb.ImageStatusResponse),
    ],
}


class CRIClient:
    """Unary CRI calls over a unix socket. `timeout` (seconds) bounds every call."""

    def __init__(self, socket_path, timeout=120):
        self.channel = grpc.insecure_channel(f"unix://{socket_path}")
        self.timeout = timeout
        for service, methods in _METHODS.items():
            for name, request_type, response_type in methods:
                stub = self.channel.unary_unary(
                    f"/{service}/{name}",
                    request_serializer=request_type.SerializeToString,
                    response_deserializer=response_type.FromString,
                )
                setattr(self, name, self._bound(stub))

    def _bound(self, stub):
        def call(request, timeout=None):
            return stub(request, timeout=timeout or self.timeout)
        return call

    def wait_ready(self, timeout=20):
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def close(self):
        self.channel.close()
