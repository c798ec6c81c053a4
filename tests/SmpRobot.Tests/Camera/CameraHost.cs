using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller;
using SmpRobot.Geometry;
using SmpRobot.Vision;

namespace SmpRobot.Tests.Camera;

/// <summary>
/// A real controller host in-process (Kestrel on a free loopback port, the real gRPC services), its
/// gantry not connected (the camera service does not need it), with either the profile's fixed head
/// or a tracked head from a still synthetic scene.
/// </summary>
internal sealed class CameraHost : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private readonly WebApplication app;

    private CameraHost(WebApplication app, string dataDirectory, Uri address, TrackedHeadPoseSource? tracked)
    {
        this.app = app;
        DataDirectory = dataDirectory;
        Address = address;
        Tracked = tracked;
        Channel = GrpcChannel.ForAddress(address);
        Camera = new CameraService.CameraServiceClient(Channel);
    }

    public string DataDirectory { get; }

    public Uri Address { get; }

    /// <summary>The tracked head pose source (owned by the host's DI container), or null for a fixed head.</summary>
    public TrackedHeadPoseSource? Tracked { get; }

    public GrpcChannel Channel { get; }

    public CameraService.CameraServiceClient Camera { get; }

    /// <summary>
    /// A still synthetic head tracked by a camera (720p) that delivers exactly one frame, no frame
    /// processed yet: the host's tracking loop finds the recording over, so what the tests compare
    /// cannot change under them.
    /// </summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA2000", Justification = "each wrapper disposes what it is given: the tracked source its frames, OneFrame its source, the synthetic source its scene; the caller owns the tracked source")]
    public static TrackedHeadPoseSource StillTrackedSource(SemaphoreSlim? firstFrameGate = null) => new(
        new OneFrame(new SyntheticFrameSource(new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic()), TimeProvider.System), firstFrameGate),
        MarkerBoard.DefaultHeadBoard(), RigidTransform.Identity, TimeProvider.System);

    /// <summary>A recording of one frame; with a gate, the frame comes only once the gate is released (at most 20 s).</summary>
    private sealed class OneFrame(SyntheticFrameSource inner, SemaphoreSlim? gate) : IFrameSource
    {
        private bool _read;

        public string Description => inner.Description;
        public CameraIntrinsics? Intrinsics => inner.Intrinsics;
        public bool PacesItself => false;
        public TimeSpan FrameInterval => inner.FrameInterval;

        public Frame? Read()
        {
            if (_read) return null;
            _read = true;
            if (gate is not null && !gate.Wait(TimeSpan.FromSeconds(20))) return null;
            return inner.Read();
        }

        public void Dispose() => inner.Dispose();
    }

    /// <summary>Starts a host; with <paramref name="tracked"/> its head pose comes from that source (the host disposes it).</summary>
    public static async Task<CameraHost> StartAsync(TrackedHeadPoseSource? tracked = null)
    {
        var dataDirectory = Directory.CreateTempSubdirectory("smp-cam-").FullName;
        var app = ControllerHost.Build(new ControllerOptions
        {
            InsecureLoopback = true,
            ProfilePath = Path.Combine(TestProfiles.RepoRoot, "hardware", "profiles", "sim.json"),
            DataDirectory = dataDirectory,
            Urls = "http://127.0.0.1:0",
            MinimumLogLevel = LogLevel.Warning,
            ConnectAtStart = false,
            HeadPoseSource = tracked is null ? null : _ => tracked,
        });
        await app.StartAsync().WaitAsync(Timeout);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        // Resolve the source now, so the DI container owns (and disposes) it even if no call asks for it.
        _ = app.Services.GetRequiredService<IHeadPoseSource>();
        return new CameraHost(app, dataDirectory, new Uri(address), tracked);
    }

    /// <summary>The CLI arguments with this controller's address.</summary>
    public string[] Args(params string[] args) => [.. args, "--controller", Address.ToString()];

    public static DateTime Deadline() => DateTime.UtcNow.Add(Timeout);

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        await app.StopAsync().WaitAsync(Timeout);
        await app.DisposeAsync();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // A temp folder left behind is harmless.
        }
    }
}
