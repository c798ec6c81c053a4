using Microsoft.AspNetCore.Server.Kestrel.Core;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Services;
using SmpRobot.Controller.Sessions;
using SmpRobot.Controller.Storage;
using SmpRobot.Vision;

namespace SmpRobot.Controller;

/// <summary>How to run a controller (the command line of smp-controller, or a test fixture).</summary>
public sealed record ControllerOptions
{
    /// <summary>Gantry link (see <see cref="GantrySpec"/>): "sim" (default, in-process), "serial:PATH[@BAUD]" or "tcp:HOST:PORT".</summary>
    public string Gantry { get; init; } = "sim";
    /// <summary>Machine profile file; default hardware/profiles/sim.json for the simulator.</summary>
    public required string ProfilePath { get; init; }
    /// <summary>Directory of the durable state (smp.db).</summary>
    public required string DataDirectory { get; init; }
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
    /// <summary>Least severe log level written (to stderr).</summary>
    public LogLevel MinimumLogLevel { get; init; } = LogLevel.Information;
    /// <summary>Connect (and, for the simulator, power on) at start-up.</summary>
    public bool ConnectAtStart { get; init; } = true;
    /// <summary>Where the head pose comes from (tests inject a tracked one); null = the profile's fixed head.</summary>
    public Func<IServiceProvider, IHeadPoseSource>? HeadPoseSource { get; init; }
}

/// <summary>Builds the controller's gRPC host: composition root, nothing else.</summary>
public static class ControllerHost
{
    /// <summary>Default controller address (loopback only).</summary>
    public const string DefaultUrl = "http://127.0.0.1:50051";

    public static WebApplication Build(ControllerOptions options, string[]? args = null)
    {
        var profile = MachineProfile.Load(options.ProfilePath);
        var gantrySpec = GantrySpec.Parse(options.Gantry);
        if (!(options.TimeScale > 0) || !double.IsFinite(options.TimeScale))
        {
            throw new ArgumentException($"time scale must be a positive number, not {options.TimeScale}");
        }
        Directory.CreateDirectory(options.DataDirectory);

        var builder = WebApplication.CreateSlimBuilder(args ?? []);
        builder.WebHost.UseUrls(options.Urls);
        builder.WebHost.ConfigureKestrel(k => k.ConfigureEndpointDefaults(l => l.Protocols = HttpProtocols.Http2));
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        // Logs go to stderr: stdout belongs to whoever embeds the host (benches print their JSON there).
        builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.SetMinimumLevel(options.MinimumLogLevel);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("Grpc", LogLevel.Warning);

        var services = builder.Services;
        services.AddSingleton(options.TimeProvider);
        services.AddSingleton(profile);
        services.AddSingleton(sp => new LedgerStore(Path.Combine(options.DataDirectory, "smp.db"), options.TimeProvider));
        if (gantrySpec.Kind == GantryLinkKind.Simulated)
        {
            var simulator = options.Simulator ?? new SimulatedGantry(profile, options.TimeProvider, new SimulatedGantryOptions { TimeScale = options.TimeScale });
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
        services.AddSingleton<IHeadPoseSource>(sp => options.HeadPoseSource?.Invoke(sp) ?? new FixedHeadPoseSource(profile.FixedHead.ToTransform(), options.TimeProvider));
        services.AddSingleton<OperatorPresence>();
        services.AddSingleton<SafetySupervisor>();
        services.AddSingleton<SessionManager>();
        if (profile.Gpio is { } gpio)
        {
            services.AddSingleton(sp =>
            {
                var safety = sp.GetRequiredService<SafetySupervisor>();
                return GpioSafetyInputs.Open(gpio, (source, reason) => safety.EmergencyStopAsync(source, reason, options.TimeProvider.GetTimestamp(), CancellationToken.None), options.TimeProvider, sp.GetRequiredService<ILogger<GpioSafetyInputs>>());
            });
            services.AddHostedService<GpioInputsHostedService>();
        }
        services.AddHostedService(sp => new ControllerLifetime(sp.GetRequiredService<GantryConnection>(), sp.GetRequiredService<SessionManager>(), sp.GetRequiredService<IHostApplicationLifetime>(), options.ConnectAtStart, sp.GetRequiredService<ILogger<ControllerLifetime>>()));

        services.AddGrpc(o =>
        {
            o.Interceptors.Add<ErrorInterceptor>();
            o.MaxReceiveMessageSize = (int)profile.MaxPlanBytes + (1024 * 1024);
            o.EnableDetailedErrors = false;
        });
        services.AddGrpcReflection();
        services.AddGrpcHealthChecks().AddCheck("gantry", () => Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Healthy());

        var app = builder.Build();
        // E-stop latency is measured from the request's arrival at the HTTP pipeline, before gRPC
        // routing and deserialisation, so the figure includes all of the controller's own work.
        app.Use((context, next) =>
        {
            if (context.Request.Path.Equals(SafetyGrpcService.EmergencyStopPath, StringComparison.Ordinal))
            {
                context.Items[SafetyGrpcService.ArrivedTimestampKey] = options.TimeProvider.GetTimestamp();
            }
            return next(context);
        });
        app.MapGrpcService<SafetyGrpcService>();
        app.MapGrpcService<SessionGrpcService>();
        app.MapGrpcService<MachineGrpcService>();
        app.MapGrpcService<CameraGrpcService>();
        app.MapGrpcReflectionService();
        app.MapGrpcHealthChecksService();
        return app;
    }
}

/// <summary>Connects the gantry at start; on shutdown (SIGTERM) lets the running dot finish, pauses the session and closes the link.</summary>
internal sealed class ControllerLifetime(GantryConnection gantry, SessionManager sessions, IHostApplicationLifetime lifetime, bool connectAtStart, ILogger<ControllerLifetime> log) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // The web server drains open streams before hosted services stop, so the pause must begin
        // as soon as stopping is announced, not in StopAsync.
        lifetime.ApplicationStopping.Register(() =>
        {
            log.LogInformation("Shutting down: the running session (if any) finishes its dot and pauses");
            sessions.BeginShutdown();
        });
        if (!connectAtStart) return;
        try
        {
            await gantry.ConnectAsync(cancellationToken);
        }
        catch (Exception e) when (e is GantryFaultException or IOException)
        {
            // The controller still serves: the operator sees the link state and can Connect again.
            log.LogError("Could not connect to the gantry {Gantry}: {Message}", gantry.Description, e.Message);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await sessions.DisposeAsync();
        await gantry.DisposeAsync();
    }
}
