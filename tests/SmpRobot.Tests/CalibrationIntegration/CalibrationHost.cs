using Grpc.Net.Client;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Geometry;
using SmpRobot.Tests.Integration;
using SmpRobot.Vision;
using SmpRobot.Vision.Calibration;

namespace SmpRobot.Tests.CalibrationIntegration;

/// <summary>
/// A real controller (<see cref="ControllerFixture"/>: Kestrel on a free loopback port, the real gRPC
/// services) on a fast simulated gantry, with the synthetic gantry-marker camera whose truth the
/// test holds and may change.
/// </summary>
internal sealed class CalibrationHost : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = ControllerFixture.Timeout;

    private readonly ControllerFixture _fixture;

    private CalibrationHost(ControllerFixture fixture, SimulatedGantryMarkerCamera camera)
    {
        _fixture = fixture;
        Camera = camera;
        Calibration = new CalibrationService.CalibrationServiceClient(fixture.Channel);
    }

    public string Address => _fixture.Address;
    public SimulatedGantry Simulator => _fixture.Simulator;

    /// <summary>smp arguments with --controller pointing here.</summary>
    public string[] Args(params string[] args) => [.. args, "--controller", Address];
    public SimulatedGantryMarkerCamera Camera { get; }
    public string DataDirectory => _fixture.DataDirectory;
    public GrpcChannel Channel => _fixture.Channel;
    public CalibrationService.CalibrationServiceClient Calibration { get; }
    public SessionService.SessionServiceClient Sessions => _fixture.Sessions;
    public MachineService.MachineServiceClient Machine => _fixture.Machine;
    public SafetyService.SafetyServiceClient Safety => _fixture.Safety;

    /// <summary>The truth the camera starts with: the sim profile's nominal mounting, moved and turned a little.</summary>
    public static GantryMarkerTruth DefaultTruth => GantryMarkerTruth.Default(TestProfiles.Sim().Tracking.GantryFromCamera!.ToTransform());

    /// <summary>Starts a controller; <paramref name="trackedHead"/> makes the head tracked (a still head that needs no rendering).</summary>
    /// <param name="wrapCamera">Puts a test's camera in front of the synthetic one (it must dispose the one it wraps).</param>
    public static async Task<CalibrationHost> StartAsync(bool trackedHead = false, double timeScale = 200, Func<SimulatedGantryMarkerCamera, IFrameSource>? wrapCamera = null)
    {
        var profile = TestProfiles.Sim();
        var simulator = new SimulatedGantry(profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = timeScale });
        var board = MarkerBoard.Load(Path.Combine(TestProfiles.RepoRoot, "hardware", "boards", "needle-charuco-6x4.json"));
        var plate = MarkerBoard.Load(Path.Combine(TestProfiles.RepoRoot, "hardware", "boards", "intrinsics-charuco-9x7.json"));
        var camera = new SimulatedGantryMarkerCamera(() => simulator.Position, DefaultTruth, board, plate, null, TimeProvider.System);
        var fixture = await ControllerFixture.StartAsync(
            simulator,
            Directory.CreateTempSubdirectory("smp-cal-").FullName,
            headPose: trackedHead ? _ => new StillTrackedHead(profile.FixedHead.ToTransform(), TimeProvider.System) : null,
            configure: o => o with { CalibrationCamera = _ => wrapCamera is null ? camera : wrapCamera(camera) });
        return new CalibrationHost(fixture, camera);
    }

    public static DateTime Deadline => DateTime.UtcNow.Add(Timeout);

    public Task HomeAsync() => _fixture.HomeAsync();

    /// <summary>The controller's services (its store, its supervisor).</summary>
    public IServiceProvider Services => _fixture.Services;

    /// <summary>Stops the controller as SIGTERM does.</summary>
    public Task StopAsync() => _fixture.StopAsync();

    /// <summary>Waits (bounded) until the session has stopped running (aborted, completed, paused or faulted).</summary>
    public async Task WaitForFinalAsync(string sessionId)
    {
        using var cts = new CancellationTokenSource(Timeout);
        using var call = Sessions.Watch(new WatchSessionRequest { SessionId = sessionId }, cancellationToken: cts.Token);
        while (await call.ResponseStream.MoveNext(cts.Token))
        {
            if (call.ResponseStream.Current.Session.State is not (SessionState.Running or SessionState.Pausing or SessionState.Created)) return;
        }
    }

    /// <summary>Keeps an operator heartbeat ("engineer-test") going until disposal.</summary>
    public Task StartHeartbeatAsync() => _fixture.StartHeartbeatAsync("engineer-test");

    public async ValueTask DisposeAsync()
    {
        await _fixture.DisposeAsync();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // A file still open on a slow machine: the temp folder is cleaned up later.
        }
    }

    /// <summary>A tracked head that never moves and is always freshly seen: the gates pass, no frames are rendered.</summary>
    private sealed class StillTrackedHead(RigidTransform gantryFromHead, TimeProvider clock) : IHeadPoseSource
    {
        public string Description => "tracked:test-still";
        public bool IsTracking => true;
        public TimeProvider Clock => clock;
        public HeadPoseSample Latest(TimeSpan lookAhead = default) => new(gantryFromHead, clock.GetTimestamp(), 1.0, 0.0);
        HeadPoseSample? IHeadPoseSource.Latest(TimeSpan lookAhead) => Latest(lookAhead);
        public event EventHandler? PoseUpdated { add { } remove { } }
    }
}
