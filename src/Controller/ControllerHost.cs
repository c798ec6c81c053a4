using Microsoft.AspNetCore.Server.Kestrel.Core;
using SmpRobot.Controller.Calibration;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Plans;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Services;
using SmpRobot.Controller.Sessions;
using SmpRobot.Controller.Storage;
using SmpRobot.Machine;
using SmpRobot.Vision;
using SmpRobot.Vision.Calibration;

namespace SmpRobot.Controller;

/// <summary>How to run a controller (the command line of smp-controller, or a test fixture).</summary>
public sealed record ControllerOptions
{
    /// <summary>Gantry link (see <see cref="GantrySpec"/>): "sim" (default, in-process), "serial:PATH[@BAUD]" or "tcp:HOST:PORT".</summary>
    public string Gantry { get; init; } = "sim";
    /// <summary>Machine profile file; default hardware/profiles/sim.json for the simulator.</summary>
    public required string ProfilePath { get; init; }
    /// <summary>Directory of the durable state (smp.db, unless <see cref="Store"/> says otherwise).</summary>
    public required string DataDirectory { get; init; }
    /// <summary>The record store (<c>--store</c>): null = the SQLite file smp.db in <see cref="DataDirectory"/>.</summary>
    public StoreLocation? Store { get; init; }
    /// <summary>Listen address; loopback by default.</summary>
    public string Urls { get; init; } = "http://127.0.0.1:50051";
    /// <summary>
    /// Simulated seconds per wall second. For "sim", the speed of the in-process simulator; for a
    /// serial or TCP gantry, how fast the device's clock runs (1 for real hardware; the
    /// <c>--time-scale</c> of <c>smp-controller simulate</c>), used only for machine-time figures.
    /// </summary>
    public double TimeScale { get; init; } = 1;
    /// <summary>Clock of the whole controller (tests may inject their own).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
    /// <summary>An existing simulator to drive (tests and benches share one across controller restarts); null = a new one.</summary>
    public SimulatedGantry? Simulator { get; init; }
    /// <summary>
    /// The simulated person's scalp under the in-process simulator, which its probe touches; null = the synthetic
    /// head with its board where the designs assume it. Ignored for a real gantry, and when <see cref="Simulator"/>
    /// is given (that simulator has its own skin, if any). Its true head pose is wired to the head-pose source:
    /// a still head's pose, or a synthetic camera's ground truth.
    /// </summary>
    public SimulatedScalp? Scalp { get; init; }

    /// <summary>
    /// With the in-process simulator: where the board sits on the simulated head today against where the designs assume
    /// it (applied in H; a person wears it a little elsewhere each session). Null: as assumed.
    /// </summary>
    public Geometry.RigidTransform? SimulatedBoardOffset { get; init; }

    /// <summary>
    /// With the in-process simulator: the file that keeps the simulated person's tattoos between runs (read at start,
    /// added to as dots are placed), so a later session's camera sees the earlier sessions' dots. Null: none kept.
    /// </summary>
    public string? SimulatedSkinFile { get; init; }

    /// <summary>
    /// With <see cref="SimulatedSkinFile"/>: the fractions of the kept tattoos that faded and that were lost (the person
    /// comes back years later for a touch-up; seeded, the same each run). Null: as placed.
    /// </summary>
    public (double Faded, double Gone)? SimulatedSkinAge { get; init; }
    /// <summary>Least severe log level written (to stderr).</summary>
    public LogLevel MinimumLogLevel { get; init; } = LogLevel.Information;
    /// <summary>Connect (and, for the simulator, power on) at start-up.</summary>
    public bool ConnectAtStart { get; init; } = true;
    /// <summary>
    /// Camera that tracks the head (see FrameSources.Parse): "none" (a fixed head from the profile),
    /// "device:N[@WxH]", "file:PATH", "synthetic[:SCENARIO][@WxH]"; null = the profile's tracking.camera.
    /// A synthetic scene runs on the simulated clock (the time scale), so its head moves at real speed
    /// in machine time.
    /// </summary>
    public string? Camera { get; init; }
    /// <summary>
    /// The camera's intrinsics as OpenCV's calibration file (cv::FileStorage YAML/JSON/XML: image_width,
    /// image_height, camera_matrix, distortion_coefficients); null = the newest valid intrinsics calibration
    /// of this camera in the store, if any. A real camera has no default: without either it tracks nothing.
    /// </summary>
    public string? IntrinsicsPath { get; init; }
    /// <summary>Tests and benches: builds the head-pose source instead of <see cref="Camera"/>.</summary>
    public Func<IServiceProvider, IHeadPoseSource>? HeadPoseSource { get; init; }
    /// <summary>
    /// Tests and benches: builds the camera that sees the needle-head marker during calibration
    /// (owned by the controller). Null = the default: for the simulated gantry, the synthetic
    /// gantry-marker camera (<see cref="SimulatedGantryMarkerCamera"/> with <see cref="GantryMarkerTruth.Default"/>);
    /// otherwise none yet.
    /// </summary>
    public Func<IServiceProvider, IFrameSource?>? CalibrationCamera { get; init; }
    /// <summary>
    /// The GPIO chip of the profile's <c>gpio</c> section (e-stop, door, foot pedal) by chip number;
    /// null = the host's chip through libgpiod. Tests and benches pass a <see cref="SimulatedGpioDriver"/>.
    /// Called once per consumer; each owns (disposes) what it gets.
    /// </summary>
    public Func<int, System.Device.Gpio.GpioDriver>? GpioDriver { get; init; }
    /// <summary>Most session and machine-status watches on one HTTP/2 connection (default 16; Kestrel allows 100 streams per connection).</summary>
    public int MaxWatchesPerConnection { get; init; } = WatchLimiter.DefaultMaxPerConnection;
    /// <summary>Most watches over all connections (default 256).</summary>
    public int MaxWatchesTotal { get; init; } = WatchLimiter.DefaultMaxTotal;
    /// <summary>
    /// Development and CI only (--insecure-loopback): no token asked, every caller may do everything; accepted only
    /// on an http loopback address. Default false: every call but health needs a user's token, and its role decides
    /// what it may do (<see cref="Security.RpcPolicies"/>).
    /// </summary>
    public bool InsecureLoopback { get; init; }
    /// <summary>The chair's TLS certificate (PEM) for https addresses; with <see cref="TlsKeyPath"/>.</summary>
    public string? TlsCertificatePath { get; init; }
    /// <summary>The certificate's private key (PEM).</summary>
    public string? TlsKeyPath { get; init; }
}

/// <summary>Builds the controller's gRPC host: composition root, nothing else.</summary>
public static class ControllerHost
{
    /// <summary>Default controller address (loopback only).</summary>
    public const string DefaultUrl = "http://127.0.0.1:50051";

    /// <summary>Floor of the thread pool of a process that hosts a controller.</summary>
    public const int MinPoolThreads = 32;

    public static WebApplication Build(ControllerOptions options, string[]? args = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var profile = MachineProfile.Load(options.ProfilePath);
        var gantrySpec = GantrySpec.Parse(options.Gantry);
        if (!(options.TimeScale > 0) || !double.IsFinite(options.TimeScale))
        {
            throw new ArgumentException($"time scale must be a positive number, not {options.TimeScale}");
        }
        if (options.MaxWatchesPerConnection < 1 || options.MaxWatchesTotal < options.MaxWatchesPerConnection)
        {
            throw new ArgumentException($"watch limits must satisfy 1 <= per connection ({options.MaxWatchesPerConnection}) <= total ({options.MaxWatchesTotal})");
        }
        if ((options.TlsCertificatePath is null) != (options.TlsKeyPath is null)) throw new ArgumentException("--tls-cert and --tls-key go together");
        Security.ListenPolicy.Check(options.Urls, options.InsecureLoopback, options.TlsCertificatePath is not null);
#pragma warning disable CA2000 // Kestrel serves with it for the life of the process
        var certificate = options.TlsCertificatePath is null ? null : LoadCertificate(options.TlsCertificatePath, options.TlsKeyPath!);
#pragma warning restore CA2000
        Directory.CreateDirectory(options.DataDirectory);
        // The ledger's writes are synchronous fsyncs on thread-pool threads; on 2 cores a pool that
        // grows one thread per half second would then delay heartbeats, the stop sequence and the
        // per-dot cycle behind them. Raise (never lower) the pool's floor.
        ThreadPool.GetMinThreads(out var workers, out var completion);
        ThreadPool.SetMinThreads(Math.Max(workers, MinPoolThreads), Math.Max(completion, MinPoolThreads));

        var builder = WebApplication.CreateSlimBuilder(args ?? []);
        builder.WebHost.UseUrls(options.Urls);
        // The slim builder leaves https out unless asked: the chair's certificate serves https:// addresses.
        if (certificate is not null) builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.ConfigureEndpointDefaults(l => l.Protocols = HttpProtocols.Http2);
            if (certificate is not null) k.ConfigureHttpsDefaults(h => h.ServerCertificate = certificate);
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        // Logs go to stderr: stdout belongs to whoever embeds the host (benches print their JSON there).
        builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.SetMinimumLevel(options.MinimumLogLevel);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("Grpc", LogLevel.Warning);
        // A failed start is reported once, in words (ControllerLifetime, Program), not again as a stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);

        var services = builder.Services;
        services.AddSingleton(options.TimeProvider);
        services.AddSingleton(profile);
        // Opened now, not on first use: a store that cannot be reached (a PostgreSQL server down) refuses the start in
        // words (StoreUnavailableException, Program) before anything listens or moves.
#pragma warning disable CA2000 // the container disposes it with the host
        var store = new LedgerStore(options.Store ?? StoreLocation.Sqlite(Path.Combine(options.DataDirectory, "smp.db")), options.TimeProvider);
#pragma warning restore CA2000
        services.AddSingleton(sp => store);
        services.AddSingleton(sp => new Security.UserDirectory(sp.GetRequiredService<LedgerStore>(), options.TimeProvider, sp.GetRequiredService<ILogger<Security.UserDirectory>>()));
        services.AddSingleton(new Security.AccessMode { InsecureLoopback = options.InsecureLoopback });
        services.AddSingleton<DeferredAuditWrites>();
        services.AddAuthentication(Security.TokenAuthenticationHandler.SchemeName)
            .AddScheme<Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions, Security.TokenAuthenticationHandler>(Security.TokenAuthenticationHandler.SchemeName, null);
        services.AddAuthorization(o =>
        {
            foreach (var role in Security.Roles.All)
            {
                o.AddPolicy(Security.RpcPolicies.PolicyName(role), p => p.RequireAuthenticatedUser().RequireAssertion(c => Security.TokenAuthenticationHandler.IdentityOf(c.User) is { } who && who.Role >= role));
            }
            o.AddPolicy(Security.RpcPolicies.DenyPolicy, p => p.RequireAssertion(_ => false));
        });
        if (gantrySpec.Kind == GantryLinkKind.Simulated)
        {
#pragma warning disable CA2000 // deliberately outlives the host (an instance the container does not dispose): smp-controller --record reads it after the host has stopped, and it ends with the process
            var simulator = options.Simulator ?? new SimulatedGantry(profile, options.TimeProvider, new SimulatedGantryOptions { TimeScale = options.TimeScale, Skin = options.Scalp ?? SimulatedScalp.SyntheticHead(options.SimulatedBoardOffset) });
            if (options.SimulatedSkinFile is { } skinFile && simulator.Skin is SimulatedScalp kept)
            {
                kept.LoadTattoos(Path.GetFullPath(skinFile));
                if (options.SimulatedSkinAge is { } age) kept.AgeTattoos(age.Faded, age.Gone, seed: 2026);
            }
#pragma warning restore CA2000
            services.AddSingleton(simulator);
            services.AddSingleton(sp => new GantryConnection(
                () => new InProcessGantryTransport(simulator), "sim", profile, options.TimeProvider, simulator.TimeScale, sp.GetRequiredService<ILogger<GantryConnection>>()));
        }
        else
        {
            // A device on a wire: every (re)connect opens a fresh transport, which resets the board.
            services.AddSingleton(sp => new GantryConnection(
                gantrySpec.CreateTransport, gantrySpec.Description, profile, options.TimeProvider, options.TimeScale, sp.GetRequiredService<ILogger<GantryConnection>>()));
        }
        var cameraSpec = (options.Camera ?? profile.Tracking.Camera).Trim();
        // Parsed now, so a bad --camera fails at start with a clear message.
        var camera = options.HeadPoseSource is null ? CameraSetup.Create(cameraSpec, profile, options.TimeProvider, gantrySpec.Kind == GantryLinkKind.Simulated ? options.Simulator?.TimeScale ?? options.TimeScale : options.TimeScale) : null;
        if (options.IntrinsicsPath is { } intrinsicsPath)
        {
            if (camera is not TrackedHeadPoseSource tracked) throw new ArgumentException($"--intrinsics needs a camera that tracks the head (--camera device:N or file:PATH), not '{cameraSpec}'");
            var full = Path.GetFullPath(intrinsicsPath);
            tracked.SetIntrinsics(CameraIntrinsicsFile.Load(full), "file " + full);
        }
        services.AddSingleton<IHeadPoseSource>(sp =>
        {
            var source = options.HeadPoseSource?.Invoke(sp) ?? camera!;
            if (sp.GetService<SimulatedGantry>() is { Skin: SimulatedScalp scalp } simulated)
            {
                scalp.GantryFromHeadAt = TrueHeadPose(source, simulated, profile);
                if (source is TrackedHeadPoseSource { Frames: SyntheticFrameSource synthetic }) SkinOnCamera.Show(scalp, synthetic.Scene);
            }
            return source;
        });
        services.AddHostedService<TrackingLoop>();
        System.Device.Gpio.GpioDriver GpioChip(int chip) => options.GpioDriver?.Invoke(chip) ?? new System.Device.Gpio.Drivers.LibGpiodDriver(chip);
        services.AddSingleton(sp =>
        {
            var gpio = profile.Gpio;
            var log = sp.GetRequiredService<ILogger<GpioSafetySwitch>>();
            var debounce = TimeSpan.FromMilliseconds(gpio?.SwitchDebounceMs ?? 0);
            return new SafetySwitches(
                gpio?.PedalPin is { } pedalPin ? new GpioSafetySwitch("foot pedal", gpio.Chip, pedalPin, gpio.PedalPressedLow, debounce, GpioChip(gpio.Chip), options.TimeProvider, log) : null,
                gpio?.PatientSwitchPin is { } patientPin ? new GpioSafetySwitch("patient's hand switch", gpio.Chip, patientPin, gpio.PatientSwitchClosedLow, debounce, GpioChip(gpio.Chip), options.TimeProvider, log) : null);
        });
        services.AddSingleton(sp => new OperatorPresence(profile, options.TimeProvider, sp.GetRequiredService<SafetySwitches>().Pedal));
        services.AddSingleton<SafetySupervisor>();
        services.AddSingleton(sp =>
        {
            var headPose = sp.GetRequiredService<IHeadPoseSource>();
            var simulated = sp.GetService<SimulatedGantry>() is not null;
            // Filed under the tracked camera; a fixed head on the simulator calibrates the synthetic camera.
            var cameraId = headPose is TrackedHeadPoseSource tracked ? CameraIdentity.Of(tracked.Frames.Description)
                : simulated ? FormattableString.Invariant($"synthetic@{SimulatedIntrinsics(headPose).WidthPx}x{SimulatedIntrinsics(headPose).HeightPx}")
                : "none";
            return new CalibrationCameras(() => options.CalibrationCamera is { } make ? make(sp) : DefaultCalibrationCamera(sp, profile, options.TimeProvider), cameraId);
        });
        services.AddSingleton(sp => new CalibrationGate(sp.GetRequiredService<LedgerStore>(), profile, sp.GetRequiredService<IHeadPoseSource>(), options.TimeProvider, sp.GetRequiredService<CalibrationCameras>().CameraId));
        services.AddSingleton<MachineReadiness>();
        services.AddSingleton<MotionLink>();
        services.AddSingleton(sp => new ManualMotion(sp.GetRequiredService<GantryConnection>(), sp.GetRequiredService<MachineReadiness>(), sp.GetRequiredService<LedgerStore>(), profile, options.TimeProvider));
        services.AddSingleton(sp => new DotChecks(sp.GetRequiredService<LedgerStore>(), sp.GetRequiredService<IHeadPoseSource>(), options.TimeProvider, sp.GetRequiredService<ILogger<DotChecks>>()));
        services.AddSingleton<SessionManager>();
        services.AddSingleton(sp => new TreatmentPlanner(profile, Path.Combine(options.DataDirectory, "head-models")));
        services.AddSingleton<TreatmentManager>();
        services.AddSingleton<SessionReports>();
        services.AddSingleton<EarlierDotMatch>();
        services.AddSingleton(new WatchLimiter(options.MaxWatchesPerConnection, options.MaxWatchesTotal));
        services.AddSingleton<SessionEventCache>();
        services.AddSingleton<CalibrationProcedures>();
        services.AddSingleton<Surface.SurfaceProbing>();
        services.AddSingleton<Surface.SessionSurface>();
        services.AddHostedService<CalibrationStartup>();
        if (profile.Gpio is { } gpio)
        {
            services.AddSingleton(sp =>
            {
                var safety = sp.GetRequiredService<SafetySupervisor>();
                return new GpioSafetyInputs(gpio, GpioChip(gpio.Chip), (source, reason) => safety.EmergencyStopAsync(source, reason, options.TimeProvider.GetTimestamp(), CancellationToken.None), options.TimeProvider, sp.GetRequiredService<ILogger<GpioSafetyInputs>>());
            });
            services.AddHostedService<GpioInputsHostedService>();
            if (gpio.AttentionOutputPin is { } attentionPin)
            {
                services.AddSingleton(sp =>
                {
                    var sessions = sp.GetRequiredService<SessionManager>();
                    return new AttentionOutput(attentionPin, gpio.AttentionOutputActiveHigh, GpioChip(gpio.Chip), () => sessions.AttentionReason, options.TimeProvider, sp.GetRequiredService<ILogger<AttentionOutput>>());
                });
            }
        }
        services.AddHostedService(sp => new ControllerLifetime(sp.GetRequiredService<GantryConnection>(), sp.GetRequiredService<SessionManager>(), sp.GetRequiredService<IHostApplicationLifetime>(), options.ConnectAtStart, options.TimeProvider, sp.GetRequiredService<ILogger<ControllerLifetime>>()));

        services.AddGrpc(o =>
        {
            o.Interceptors.Add<AuditInterceptor>();
            o.Interceptors.Add<ErrorInterceptor>();
            o.MaxReceiveMessageSize = (int)profile.MaxPlanBytes + (1024 * 1024);
            o.EnableDetailedErrors = false;
        });
        services.AddGrpcReflection();
        services.AddGrpcHealthChecks().AddCheck<GantryHealthCheck>("gantry");

        var app = builder.Build();
        var startLog = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("SmpRobot.Controller.Security");
        if (options.InsecureLoopback)
        {
            StartLog.Insecure(startLog, options.Urls);
        }
        else if (app.Services.GetRequiredService<Security.UserDirectory>().Count == 0)
        {
            StartLog.NoUsers(startLog, options.Store is { } location ? "--store " + location.Display : "--data " + options.DataDirectory);
        }
        // E-stop latency is measured from the request's arrival at the HTTP pipeline, before gRPC
        // routing and deserialisation, so the figure includes all of the controller's own work.
        app.Use((context, next) =>
        {
            if (string.Equals(context.Request.Path.Value?.TrimEnd('/'), SafetyGrpcService.EmergencyStopPath, StringComparison.OrdinalIgnoreCase))
            {
                context.Items[SafetyGrpcService.ArrivedTimestampKey] = options.TimeProvider.GetTimestamp();
            }
            return next(context);
        });
        // Routing, then who is calling and may they, before any body is read: an unauthenticated caller costs a dictionary lookup.
        app.UseRouting();
        app.UseAuthentication();
        app.UseAuthorization();
        var maxMessageBytes = profile.MaxPlanBytes + (1024 * 1024);
        app.Use((context, next) => RequestValidation.InvokeAsync(context, () => next(context), maxMessageBytes));
        Secure(app.MapGrpcService<SafetyGrpcService>());
        Secure(app.MapGrpcService<SessionGrpcService>());
        Secure(app.MapGrpcService<MachineGrpcService>());
        Secure(app.MapGrpcService<CameraGrpcService>());
        Secure(app.MapGrpcService<CalibrationGrpcService>());
        Secure(app.MapGrpcService<SurfaceGrpcService>());
        Secure(app.MapGrpcService<AccessGrpcService>());
        Secure(app.MapGrpcService<TreatmentGrpcService>());
        Secure(app.MapGrpcReflectionService());
        Secure(app.MapGrpcHealthChecksService());
        return app;
    }

    /// <summary>
    /// Gives every method of a mapped service its role policy from <see cref="Security.RpcPolicies"/>; a method without
    /// one (and grpc-dotnet's catch-all for unknown methods) is refused to everyone.
    /// </summary>
    private static void Secure(IEndpointConventionBuilder service) => service.Add(endpoint =>
    {
        var path = endpoint.Metadata.OfType<Grpc.AspNetCore.Server.GrpcMethodMetadata>().FirstOrDefault()?.Method.FullName;
        var policy = path is null ? null : Security.RpcPolicies.Of(path);
        if (policy is { MinimumRole: null })
        {
            endpoint.Metadata.Add(new Microsoft.AspNetCore.Authorization.AllowAnonymousAttribute());
        }
        else
        {
            endpoint.Metadata.Add(new Microsoft.AspNetCore.Authorization.AuthorizeAttribute(policy?.MinimumRole is { } role ? Security.RpcPolicies.PolicyName(role) : Security.RpcPolicies.DenyPolicy));
        }
    });

    /// <summary>The chair's certificate and key from PEM files; ArgumentException naming the file when they cannot be read.</summary>
    private static System.Security.Cryptography.X509Certificates.X509Certificate2 LoadCertificate(string certificatePath, string keyPath)
    {
        try
        {
            return System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(Path.GetFullPath(certificatePath), Path.GetFullPath(keyPath));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            throw new ArgumentException($"cannot read the TLS certificate {certificatePath} with key {keyPath}: {e.Message}");
        }
    }

    /// <summary>
    /// Where the simulated head really is at a simulated moment: a still head where the profile (and the head
    /// position the operator was asked for) puts it; a synthetic camera's scene at its ground truth, seen through
    /// the profile's mounting (the synthetic camera's true one). Null (no head) for any other source.
    /// </summary>
    private static Func<double, Geometry.RigidTransform?> TrueHeadPose(IHeadPoseSource source, SimulatedGantry simulator, MachineProfile profile) => source switch
    {
        FixedHeadPoseSource still => _ => still.Latest().GantryFromHead,
        TrackedHeadPoseSource { Frames: SyntheticFrameSource frames } when profile.Tracking.GantryFromCamera is { } mount =>
            sim => mount.ToTransform() * frames.Scene.TruthAt(frames.SceneSecondsAt(simulator.TimestampAt(sim))),
        _ => _ => null,
    };

    /// <summary>The synthetic tracking camera's intrinsics, else the default synthetic camera's.</summary>
    private static CameraIntrinsics SimulatedIntrinsics(IHeadPoseSource headPose) =>
        headPose is TrackedHeadPoseSource { Frames.Intrinsics: { } k } ? k : CameraIntrinsics.Synthetic();

    /// <summary>The simulator's synthetic gantry-marker camera (same intrinsics as a synthetic tracking camera); null for a real gantry.</summary>
    private static SimulatedGantryMarkerCamera? DefaultCalibrationCamera(IServiceProvider sp, MachineProfile profile, TimeProvider timeProvider)
    {
        var simulator = sp.GetService<SimulatedGantry>();
        if (simulator is null || profile.Tracking.GantryFromCamera is not { } nominal) return null;
        var intrinsics = SimulatedIntrinsics(sp.GetRequiredService<IHeadPoseSource>());
        var board = MarkerBoard.Load(Path.Combine(HardwarePaths.HardwareDirectory(), profile.Tracking.CalibrationBoard));
        var plate = MarkerBoard.Load(Path.Combine(HardwarePaths.HardwareDirectory(), profile.Tracking.IntrinsicsBoard));
        return new SimulatedGantryMarkerCamera(() => simulator.Position, GantryMarkerTruth.Default(nominal.ToTransform()), board, plate, intrinsics, timeProvider);
    }
}

/// <summary>What the controller says about its access at start-up (source-generated).</summary>
internal static partial class StartLog
{
    [LoggerMessage(Level = LogLevel.Warning, Message = "INSECURE: --insecure-loopback: no TLS and no authentication on {Urls}; every local caller may do everything. For development and CI only.")]
    public static partial void Insecure(ILogger log, string urls);

    [LoggerMessage(Level = LogLevel.Warning, Message = "No users yet: every call is refused until an admin is added (smp-controller user add NAME --role admin {Store})")]
    public static partial void NoUsers(ILogger log, string store);
}

/// <summary>At start, head tracking uses the newest valid intrinsics of its camera (when it has none of its own or from a file) and camera-to-gantry calibration (instead of the profile's nominal mounting).</summary>
internal sealed class CalibrationStartup(CalibrationProcedures procedures) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        procedures.ApplyLatestIntrinsics();
        procedures.ApplyLatest();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Builds the head-pose source a controller runs with.</summary>
public static class CameraSetup
{
    /// <summary>
    /// "none" → the profile's fixed head; otherwise a tracked camera with T_GC from the profile. A
    /// synthetic camera renders and is tracked on a clock running <paramref name="timeScale"/> times
    /// faster than <paramref name="timeProvider"/> (the simulated world's clock); real cameras use
    /// the real clock. Throws ArgumentException or InvalidDataException with a clear message.
    /// </summary>
    public static IHeadPoseSource Create(string cameraSpec, MachineProfile profile, TimeProvider timeProvider, double timeScale)
    {
        ArgumentNullException.ThrowIfNull(cameraSpec);
        ArgumentNullException.ThrowIfNull(profile);
        if (cameraSpec.Equals("none", StringComparison.OrdinalIgnoreCase)) return new FixedHeadPoseSource(profile.FixedHead.ToTransform(), timeProvider);
        if (profile.Tracking.GantryFromCamera is null) throw new InvalidDataException($"profile '{profile.Name}' has no tracking.gantryFromCamera: a camera needs its mounting (T_GC)");
        var synthetic = cameraSpec.StartsWith("synthetic", StringComparison.OrdinalIgnoreCase);
        TimeProvider clock = synthetic && timeScale != 1 ? new ScaledTimeProvider(timeProvider, timeScale) : timeProvider;
        var boardPath = Path.Combine(HardwarePaths.HardwareDirectory(), profile.Tracking.Board);
        var board = MarkerBoard.Load(boardPath);
        IFrameSource? frames = null;
        try
        {
            frames = FrameSources.Parse(cameraSpec, clock);
            return CreateTracked(frames, board, profile, clock);
        }
        catch
        {
            frames?.Dispose();
            board.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Tracks <paramref name="board"/> in <paramref name="frames"/> with T_GC from the profile and the
    /// tracker tuning placement needs; <paramref name="clock"/> is the frames' clock.
    /// </summary>
    public static TrackedHeadPoseSource CreateTracked(IFrameSource frames, MarkerBoard board, MachineProfile profile, TimeProvider clock)
    {
        ArgumentNullException.ThrowIfNull(profile);
        var mount = profile.Tracking.GantryFromCamera ?? throw new InvalidDataException($"profile '{profile.Name}' has no tracking.gantryFromCamera: a camera needs its mounting (T_GC)");
        // Predictions reach as far as the look-ahead of a dot (travel + plunge, ~200 ms for the
        // verify); the stale gate separately bounds how old the frame behind them may be. A
        // constant-jerk model follows breathing sway (see TrackerOptions).
        return new TrackedHeadPoseSource(frames, board, mount.ToTransform(), clock, options: TrackerOptions);
    }

    /// <summary>The tracker's options in the controller (the tracking bench measures with the same).</summary>
    public static HeadTrackerOptions TrackerOptions { get; } = new()
    {
        // A constant-jerk model on position: on synthetic sway, 235 ms ahead, the error against the truth has median
        // 0.056 / p95 0.146 mm, against 0.077 / 0.156 with constant acceleration (jerk noise 10, the earlier optimum);
        // two predictions of the same instant made 100 ms apart (what verify-before-plunge compares against
        // tracking.aimToleranceMm) agree within 0.06 mm 43% of the time instead of 17%. Snap noise 10/15/20 and angular
        // noise 0.05/0.1/0.2 were tried over 600 frames; 15 and 0.2 are best on the error with the agreement near its best.
        Filter = new PoseFilterOptions { MaxPredictionMs = 600, EstimateAcceleration = true, EstimateJerk = true, SnapNoiseMmPerS4 = 15, AngularAccelerationNoiseRadPerS2 = 0.2 },
    };
}

/// <summary>Tracks the camera's frames in the background for as long as the controller runs (nothing to do for a fixed head). The DI container disposes the source.</summary>
internal sealed partial class TrackingLoop(IHeadPoseSource source, ILogger<TrackingLoop> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (source is not TrackedHeadPoseSource tracked) return;
        Log.Tracking(log, tracked.Description);
        // A thread of its own: detection is CPU-bound and must not starve the gRPC and gantry work.
        await Task.Factory.StartNew(async () =>
        {
            try
            {
                await tracked.RunAsync(stoppingToken);
                if (!stoppingToken.IsCancellationRequested) Log.CameraEnded(log, tracked.Description);
            }
            catch (OperationCanceledException)
            {
                // Shutting down.
            }
#pragma warning disable CA1031 // last resort of the tracking thread: the failure is logged and the pose goes stale, so sessions hold instead of the controller stopping
            catch (Exception e)
#pragma warning restore CA1031
            {
                Log.TrackingStopped(log, e);
            }
        }, stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }


    /// <summary>Log messages (source-generated).</summary>
    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Information, Message = "Tracking the head with {Camera}")]
        public static partial void Tracking(ILogger log, string camera);

        [LoggerMessage(Level = LogLevel.Warning, Message = "The camera {Camera} ended: the pose goes stale and sessions hold")]
        public static partial void CameraEnded(ILogger log, string camera);

        [LoggerMessage(Level = LogLevel.Error, Message = "Tracking stopped: the pose goes stale and sessions hold")]
        public static partial void TrackingStopped(ILogger log, Exception error);
    }
}

/// <summary>
/// Connects the gantry at start; on shutdown (SIGTERM) lets the running dot finish and pauses the session, stops any
/// other procedure that holds the machine (calibration, probe, jog, homing) as its caller's Ctrl+C would, waits for
/// it to let the machine go, and only then closes the link (the cameras and the store are released after this).
/// </summary>
internal sealed partial class ControllerLifetime(GantryConnection gantry, SessionManager sessions, IHostApplicationLifetime lifetime, bool connectAtStart, TimeProvider time, ILogger<ControllerLifetime> log) : IHostedLifecycleService
{
    /// <summary>How long a shutdown waits for the machine's holder to stop before it closes the link anyway.</summary>
    internal static readonly TimeSpan HolderStopBound = TimeSpan.FromSeconds(15);

    /// <summary>Before the server listens (every hosted service's StartingAsync runs before any StartAsync): restart recovery.</summary>
    public Task StartingAsync(CancellationToken cancellationToken)
    {
        sessions.RecoverAfterRestart();
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // The web server drains open streams before hosted services stop, so the pause must begin
        // as soon as stopping is announced, not in StopAsync.
        lifetime.ApplicationStopping.Register(() =>
        {
            Log.ShuttingDown(log);
            sessions.BeginShutdown();
            gantry.Lease.BeginShutdown();
        });
        return Task.CompletedTask;
    }

    /// <summary>
    /// Connects once the server listens: a controller that cannot have its address (another one
    /// runs) fails before it touches the gantry. A gantry held by another process ends this
    /// controller at once (it could never move it); any other failure leaves it serving, so the
    /// operator sees the link state and can connect again.
    /// </summary>
    public async Task StartedAsync(CancellationToken cancellationToken)
    {
        if (!connectAtStart) return;
        try
        {
            await gantry.ConnectAsync(cancellationToken);
        }
        catch (GantryInUseException e)
        {
            Log.StartFailed(log, e.Message);
            throw;
        }
        catch (Exception e) when (e is GantryFaultException or IOException)
        {
            Log.CouldNotConnect(log, gantry.Description, e.Message);
        }
    }

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await sessions.DisposeAsync();
        // Whoever holds the machine was told to stop when stopping began; its stop (feed hold, needle up) needs the
        // link, its record the store.
        gantry.Lease.BeginShutdown();
        if (gantry.Lease.Holder is { } holder && !await gantry.Lease.WaitUntilFreeAsync(HolderStopBound, time))
        {
            Log.HolderDidNotStop(log, holder.What, HolderStopBound.TotalSeconds);
        }
        await gantry.DisposeAsync();
    }

    /// <summary>Log messages (source-generated).</summary>
    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Information, Message = "Shutting down: the running session (if any) finishes its dot and pauses")]
        public static partial void ShuttingDown(ILogger log);

        [LoggerMessage(Level = LogLevel.Critical, Message = "{Message}")]
        public static partial void StartFailed(ILogger log, string message);

        [LoggerMessage(Level = LogLevel.Error, Message = "Shutting down: the {What} did not let the machine go within {Seconds} s; the link closes anyway (check the machine, the hard-wired e-stop stops it)")]
        public static partial void HolderDidNotStop(ILogger log, string what, double seconds);

        [LoggerMessage(Level = LogLevel.Error, Message = "Could not connect to the gantry {Gantry}: {Message}")]
        public static partial void CouldNotConnect(ILogger log, string gantry, string message);
    }
}
