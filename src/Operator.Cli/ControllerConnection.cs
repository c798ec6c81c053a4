using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli;

/// <summary>
/// The CLI's gRPC connections to one controller. Safety calls (e-stop, reset, status, operator heartbeat)
/// go over their own channel with its own HTTP/2 connection, created at start-up, so a busy watch stream
/// or a saturated connection can never delay an emergency stop.
/// </summary>
internal sealed class ControllerConnection : IDisposable
{
    /// <summary>Default deadline of unary calls.</summary>
    public static readonly TimeSpan UnaryTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Homing moves the whole gantry; it may take minutes on a real machine.</summary>
    public static readonly TimeSpan HomeTimeout = TimeSpan.FromMinutes(3);

    /// <summary>An e-stop either lands fast or the operator must use the hard-wired button.</summary>
    public static readonly TimeSpan EmergencyStopTimeout = TimeSpan.FromSeconds(5);

    private readonly IDisposable[] owned;

    public ControllerConnection(Uri address, CallInvoker main, CallInvoker safety, TimeProvider time, params IDisposable[] owned)
    {
        Address = address;
        Time = time;
        this.owned = owned;
        Sessions = new SessionService.SessionServiceClient(main);
        Machine = new MachineService.MachineServiceClient(main);
        Camera = new CameraService.CameraServiceClient(main);
        Calibration = new CalibrationService.CalibrationServiceClient(main);
        Surface = new SurfaceService.SurfaceServiceClient(main);
        Access = new AccessService.AccessServiceClient(main);
        Treatments = new TreatmentService.TreatmentServiceClient(main);
        Safety = new SafetyService.SafetyServiceClient(safety);
    }

    public Uri Address { get; }

    public TimeProvider Time { get; }

    public SessionService.SessionServiceClient Sessions { get; }

    public MachineService.MachineServiceClient Machine { get; }

    public CameraService.CameraServiceClient Camera { get; }

    public CalibrationService.CalibrationServiceClient Calibration { get; }

    public SurfaceService.SurfaceServiceClient Surface { get; }

    /// <summary>Users and the audit log.</summary>
    public AccessService.AccessServiceClient Access { get; }

    /// <summary>Treatments across weeks: their sessions and records.</summary>
    public TreatmentService.TreatmentServiceClient Treatments { get; }

    /// <summary>Starting a treatment samples its design on the controller (seconds for a whole scalp, more on a slow one).</summary>
    public static readonly TimeSpan TreatmentTimeout = TimeSpan.FromMinutes(5);

    /// <summary>A surface probe moves to each of up to 64 points and probes slowly: minutes.</summary>
    public static readonly TimeSpan SurfaceProbeTimeout = TimeSpan.FromMinutes(15);

    /// <summary>A gantry calibration moves the machine to 25+ stops at real speed: about a minute, minutes on a slow machine.</summary>
    public static readonly TimeSpan CalibrationTimeout = TimeSpan.FromMinutes(10);

    /// <summary>On the dedicated safety channel.</summary>
    public SafetyService.SafetyServiceClient Safety { get; }

    /// <summary>
    /// Opens a connection with a main channel (h2c for http://, TLS for https://) and a separate safety channel, each
    /// sending the user's token with every call.
    /// </summary>
    public static ControllerConnection Create(Uri address, ControllerAccess access)
    {
        ArgumentNullException.ThrowIfNull(access);
        var mainHandler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(5),
            EnableMultipleHttp2Connections = true,
            KeepAlivePingDelay = TimeSpan.FromSeconds(20),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
        };
        access.ConfigureTls(mainHandler);
        var main = GrpcChannel.ForAddress(address, new GrpcChannelOptions { HttpHandler = mainHandler, DisposeHttpClient = true });
        var safetyHandler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(3),
            // Keep the safety connection warm and notice a dead peer quickly.
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            KeepAlivePingDelay = TimeSpan.FromSeconds(5),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(5),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
        };
        access.ConfigureTls(safetyHandler);
        var safety = GrpcChannel.ForAddress(address, new GrpcChannelOptions { HttpHandler = safetyHandler, DisposeHttpClient = true });
        return new ControllerConnection(address, WithToken(main.CreateCallInvoker(), access.Token), WithToken(safety.CreateCallInvoker(), access.Token), TimeProvider.System, main, safety);
    }

    /// <summary>Every call through <paramref name="invoker"/> carries <c>authorization: Bearer TOKEN</c> (nothing without a token).</summary>
    public static CallInvoker WithToken(CallInvoker invoker, string? token)
    {
        if (string.IsNullOrEmpty(token)) return invoker;
        var header = "Bearer " + token;
        return invoker.Intercept(metadata =>
        {
            metadata.Add("authorization", header);
            return metadata;
        });
    }

    /// <summary>Absolute deadline <paramref name="timeout"/> from now, as gRPC wants it.</summary>
    public DateTime Deadline(TimeSpan timeout) => Time.GetUtcNow().UtcDateTime + timeout;

    public DateTime Deadline() => Deadline(UnaryTimeout);

    public void Dispose()
    {
        foreach (var d in owned) d.Dispose();
    }
}
