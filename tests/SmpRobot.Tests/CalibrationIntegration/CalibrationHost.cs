using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Vision;
using SmpRobot.Vision.Calibration;

namespace SmpRobot.Tests.CalibrationIntegration;

/// <summary>
/// A real controller (Kestrel on a free loopback port, the real gRPC services) on a fast simulated
/// gantry, with the synthetic gantry-marker camera whose truth the test holds and may change.
/// </summary>
internal sealed class CalibrationHost : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private readonly WebApplication _app;
    private readonly CancellationTokenSource _heartbeatStop = new();
    private Task? _heartbeat;

    private CalibrationHost(WebApplication app, SimulatedGantry simulator, SimulatedGantryMarkerCamera camera, string address, string dataDirectory)
    {
        _app = app;
        Address = address;
        Simulator = simulator;
        Camera = camera;
        DataDirectory = dataDirectory;
        Channel = GrpcChannel.ForAddress(address);
        Calibration = new CalibrationService.CalibrationServiceClient(Channel);
        Sessions = new SessionService.SessionServiceClient(Channel);
        Machine = new MachineService.MachineServiceClient(Channel);
        Safety = new SafetyService.SafetyServiceClient(Channel);
    }

    public string Address { get; }
    public SimulatedGantry Simulator { get; }

    /// <summary>smp arguments with --controller pointing here.</summary>
    public string[] Args(params string[] args) => [.. args, "--controller", Address];
    public SimulatedGantryMarkerCamera Camera { get; }
    public string DataDirectory { get; }
    public GrpcChannel Channel { get; }
    public CalibrationService.CalibrationServiceClient Calibration { get; }
    public SessionService.SessionServiceClient Sessions { get; }
    public MachineService.MachineServiceClient Machine { get; }
    public SafetyService.SafetyServiceClient Safety { get; }

    /// <summary>The truth the camera starts with: the sim profile's nominal mounting, moved and turned a little.</summary>
    public static GantryMarkerTruth DefaultTruth => GantryMarkerTruth.Default(TestProfiles.Sim().Tracking.GantryFromCamera!.ToTransform());

    /// <summary>Starts a controller; <paramref name="trackedHead"/> makes the head tracked (a still head that needs no rendering).</summary>
    public static async Task<CalibrationHost> StartAsync(bool trackedHead = false, double timeScale = 200)
    {
        var profile = TestProfiles.Sim();
        var simulator = new SimulatedGantry(profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = timeScale });
        var board = MarkerBoard.Load(Path.Combine(TestProfiles.RepoRoot, "hardware", "boards", "needle-charuco-6x4.json"));
        var plate = MarkerBoard.Load(Path.Combine(TestProfiles.RepoRoot, "hardware", "boards", "intrinsics-charuco-9x7.json"));
        var camera = new SimulatedGantryMarkerCamera(() => simulator.Position, DefaultTruth, board, plate, null, TimeProvider.System);
        var dataDirectory = Directory.CreateTempSubdirectory("smp-cal-").FullName;
        var app = ControllerHost.Build(new ControllerOptions
        {
            ProfilePath = Path.Combine(TestProfiles.RepoRoot, "hardware", "profiles", "sim.json"),
            DataDirectory = dataDirectory,
            Urls = "http://127.0.0.1:0",
            Simulator = simulator,
            MinimumLogLevel = LogLevel.Warning,
            CalibrationCamera = _ => camera,
            HeadPoseSource = trackedHead ? _ => new StillTrackedHead(profile.FixedHead.ToTransform(), TimeProvider.System) : null,
        });
        await app.StartAsync().WaitAsync(Timeout);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new CalibrationHost(app, simulator, camera, address, dataDirectory);
    }

    public DateTime Deadline => DateTime.UtcNow.Add(Timeout);

    public async Task HomeAsync() => await Machine.HomeAsync(new HomeRequest(), deadline: Deadline);

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

    /// <summary>Keeps an operator heartbeat going until disposal (answers read, so the stream never stalls).</summary>
    public async Task StartHeartbeatAsync()
    {
        var call = Safety.OperatorHeartbeat(cancellationToken: _heartbeatStop.Token);
        await call.RequestStream.WriteAsync(new Heartbeat { Operator = "engineer-test", Sequence = 0 });
        await call.ResponseStream.MoveNext(_heartbeatStop.Token).WaitAsync(Timeout);
        _heartbeat = Task.Run(async () =>
        {
            var replies = Task.Run(async () =>
            {
                while (await call.ResponseStream.MoveNext(_heartbeatStop.Token))
                {
                }
            });
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
            ulong seq = 1;
            try
            {
                while (await timer.WaitForNextTickAsync(_heartbeatStop.Token))
                {
                    await call.RequestStream.WriteAsync(new Heartbeat { Operator = "engineer-test", Sequence = seq++ });
                }
                await replies;
            }
            catch (Exception e) when (e is OperationCanceledException or RpcException or InvalidOperationException)
            {
                // Stopped on purpose, or the controller went away.
            }
            finally
            {
                call.Dispose();
            }
        });
    }

    public async ValueTask DisposeAsync()
    {
        await _heartbeatStop.CancelAsync();
        if (_heartbeat is not null) await _heartbeat.WaitAsync(Timeout);
        Channel.Dispose();
        await _app.DisposeAsync();
        _heartbeatStop.Dispose();
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
