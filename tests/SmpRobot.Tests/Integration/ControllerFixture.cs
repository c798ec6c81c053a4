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
using SmpRobot.Controller.Motion;
using SmpRobot.Machine;

namespace SmpRobot.Tests.Integration;

/// <summary>
/// A real controller host (Kestrel on a free loopback port, the real gRPC services) in-process,
/// driving a simulated gantry that can outlive the host (to test restarts).
/// </summary>
internal sealed class ControllerFixture : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private readonly WebApplication _app;
    private readonly CancellationTokenSource _heartbeatStop = new();
    private Task? _heartbeat;
    private Task? _heartbeatReplies;

    private ControllerFixture(WebApplication app, SimulatedGantry simulator, string dataDirectory, string address)
    {
        _app = app;
        Simulator = simulator;
        DataDirectory = dataDirectory;
        Address = address;
        Channel = GrpcChannel.ForAddress(address);
        SafetyChannel = GrpcChannel.ForAddress(address);
        Sessions = new SessionService.SessionServiceClient(Channel);
        Machine = new MachineService.MachineServiceClient(Channel);
        Safety = new SafetyService.SafetyServiceClient(SafetyChannel);
    }

    public SimulatedGantry Simulator { get; }
    public string DataDirectory { get; }
    public string Address { get; }
    public GrpcChannel Channel { get; }
    public GrpcChannel SafetyChannel { get; }
    public SessionService.SessionServiceClient Sessions { get; }
    public MachineService.MachineServiceClient Machine { get; }
    public SafetyService.SafetyServiceClient Safety { get; }
    public IServiceProvider Services => _app.Services;

    public static MachineProfile Profile => TestProfiles.Sim();

    /// <summary>Starts a controller. Pass the simulator and data directory of a previous one to "restart" it.</summary>
    /// <param name="configure">Adds to the controller's options (e.g. a calibration camera).</param>
    public static async Task<ControllerFixture> StartAsync(SimulatedGantry? simulator = null, string? dataDirectory = null, double timeScale = 200, Func<IServiceProvider, SmpRobot.Vision.IHeadPoseSource>? headPose = null, Func<ControllerOptions, ControllerOptions>? configure = null)
    {
        var profile = Profile;
        simulator ??= new SimulatedGantry(profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = timeScale });
        dataDirectory ??= Directory.CreateTempSubdirectory("smp-it-").FullName;
        configure ??= o => o;
        var app = ControllerHost.Build(configure(new ControllerOptions
        {
            InsecureLoopback = true,
            ProfilePath = Path.Combine(TestProfiles.RepoRoot, "hardware", "profiles", "sim.json"),
            DataDirectory = dataDirectory,
            Urls = "http://127.0.0.1:0",
            Simulator = simulator,
            MinimumLogLevel = LogLevel.Warning,
            HeadPoseSource = headPose,
        }));
        await app.StartAsync().WaitAsync(Timeout);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new ControllerFixture(app, simulator, dataDirectory, address);
    }

    /// <summary>Keeps an operator heartbeat stream open (every 100 ms) until <see cref="StopHeartbeatAsync"/> or disposal.</summary>
    public async Task StartHeartbeatAsync(string operatorName = "test")
    {
        var call = Safety.OperatorHeartbeat(cancellationToken: _heartbeatStop.Token);
        await call.RequestStream.WriteAsync(new Heartbeat { Operator = operatorName, Sequence = 0 });
        await call.ResponseStream.MoveNext(_heartbeatStop.Token).WaitAsync(Timeout);
        // Read every answer, as smp does: unread answers would fill the HTTP/2 window and stall the stream.
        _heartbeatReplies = Task.Run(async () =>
        {
            try
            {
                while (await call.ResponseStream.MoveNext(_heartbeatStop.Token))
                {
                }
            }
            catch (Exception e) when (e is OperationCanceledException or RpcException or InvalidOperationException)
            {
                // Stopped on purpose, or the controller went away.
            }
        });
        _heartbeat = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
            ulong seq = 1;
            try
            {
                while (await timer.WaitForNextTickAsync(_heartbeatStop.Token))
                {
                    await call.RequestStream.WriteAsync(new Heartbeat { Operator = operatorName, Sequence = seq++ });
                }
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

    public async Task StopHeartbeatAsync()
    {
        await _heartbeatStop.CancelAsync();
        if (_heartbeat is not null) await _heartbeat.WaitAsync(Timeout);
        if (_heartbeatReplies is not null) await _heartbeatReplies.WaitAsync(Timeout);
    }

    /// <summary>Homes the machine (needed after power-on).</summary>
    public async Task HomeAsync() => await Machine.HomeAsync(new HomeRequest(), deadline: DateTime.UtcNow.Add(Timeout));

    /// <summary>Follows the session's Watch stream until <paramref name="until"/> holds.</summary>
    public async Task<Session> WaitForAsync(string sessionId, Func<Session, bool> until, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? Timeout);
        using var call = Sessions.Watch(new WatchSessionRequest { SessionId = sessionId }, cancellationToken: cts.Token);
        Session? last = null;
        try
        {
            while (await call.ResponseStream.MoveNext(cts.Token))
            {
                last = call.ResponseStream.Current.Session;
                if (until(last)) return last;
                if (IsEnded(last))
                {
                    throw new InvalidOperationException($"session {sessionId} ended as {last.State} ({last.Reason}) before reaching the expected state");
                }
            }
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled)
        {
            // Timed out below.
        }
        var final = await Sessions.GetAsync(new SessionRef { SessionId = sessionId });
        if (until(final)) return final;
        throw new TimeoutException($"session {sessionId} did not reach the expected state; last seen {last ?? final}");
    }

    /// <summary>Completed, aborted, stopped or faulted: the run is over and will not go on by itself.</summary>
    public static bool IsFinished(Session s) => s.State is SessionState.Completed or SessionState.Aborted or SessionState.EmergencyStopped or SessionState.Faulted;

    /// <summary>Finished, or paused (held).</summary>
    public static bool IsEnded(Session s) => s.State is SessionState.Completed or SessionState.Aborted or SessionState.EmergencyStopped or SessionState.Faulted or SessionState.Paused;

    /// <summary>Stops the host gracefully (as on SIGTERM, with the operator's console still connected).</summary>
    public async Task StopAsync()
    {
        _stopped = true;
        await _app.StopAsync().WaitAsync(Timeout);
        await StopHeartbeatAsync();
    }

    private bool _stopped;

    /// <summary>
    /// Closes the test's connections, then stops the host as a real controller stops (a procedure the test left
    /// running is stopped and let go of the machine) before its services are released: a calibration still rendering
    /// a frame or stopping the gantry must never find them freed under it.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        await StopHeartbeatAsync();
        Channel.Dispose();
        SafetyChannel.Dispose();
        if (!_stopped) await _app.StopAsync().WaitAsync(Timeout);
        await _app.DisposeAsync();
        _heartbeatStop.Dispose();
    }
}
