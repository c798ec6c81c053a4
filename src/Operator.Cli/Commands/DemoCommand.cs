using System.CommandLine;
using System.Globalization;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli.Commands;

/// <summary>
/// <c>smp demo</c>: starts a controller process on the simulated gantry, runs a plan exactly as <c>smp run</c>,
/// then stops the controller.
/// </summary>
internal static class DemoCommand
{
    /// <summary>The bundled demo plan, relative to the hardware folder.</summary>
    public const string DefaultPlan = "plans/demo-crown.json";

    /// <summary>The demo's head: breathing sway seen by the synthetic camera.</summary>
    public const string DefaultCamera = "synthetic:sway";

    /// <summary>Default speed-up with a camera: real time, because tracking (render + detect, ~15-40 ms a frame on this 2-core machine) must keep poses under 100 ms of simulated time.</summary>
    public const double TrackedTimeScale = 1;

    /// <summary>
    /// The fastest simulation the synthetic camera is tracked at: its frames are rendered and tracked in wall time
    /// (15-40 ms each), while a pose must stay under 100 ms of simulated time; faster, every dot holds on a stale pose.
    /// </summary>
    public const double MaxTrackedTimeScale = 1;

    /// <summary>Default speed-up without a camera.</summary>
    public const double FixedHeadTimeScale = 20;

    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(30);

    public static Command Build(CliCommands app)
    {
        var dots = new Option<int?>("--dots") { Description = "Keep only the first N dots of the plan", HelpName = "N" };
        var camera = new Option<string>("--camera")
        {
            Description = "Camera of the demo controller: synthetic:SCENARIO (sway = breathing sway; still, drift, jerk[:SECONDS], occlusion, ...) "
                + "tracked live on the simulated clock, or none (a fixed head, no tracking)",
            HelpName = "SPEC",
            DefaultValueFactory = _ => DefaultCamera,
        };
        var timeScale = new Option<double?>("--time-scale")
        {
            Description = $"Simulation speed-up of the simulated gantry (default {TrackedTimeScale} with a camera: tracking must keep up with the "
                + $"simulated clock; {FixedHeadTimeScale} with --camera none)",
            HelpName = "X",
        };
        var noUi = new Option<bool>("--no-ui") { Description = "No live view: a progress line on stderr every ~2 s" };
        var plan = new Option<string?>("--plan") { Description = "Plan file (default: hardware/" + DefaultPlan + ")", HelpName = "FILE" };
        var command = new Command("demo", "Start a controller on the simulated gantry, run a plan as 'smp run' does "
            + "(e / Esc / Ctrl+C = EMERGENCY STOP, space = pause/resume), then stop the controller. The controller is "
            + "$SMP_CONTROLLER_EXE or smp-controller next to smp; its log goes to a new temporary folder.")
        {
            dots,
            camera,
            timeScale,
            noUi,
            plan,
        };
        // Validated in the action: option defaults are not applied yet when command validators run.
        app.Bind(command, async (ctx, parse, ct) =>
        {
            var cameraSpec = parse.GetValue(camera)!;
            var scale = parse.GetValue(timeScale) ?? (cameraSpec.Trim().Equals("none", StringComparison.OrdinalIgnoreCase) ? FixedHeadTimeScale : TrackedTimeScale);
            if (!double.IsFinite(scale) || scale <= 0) throw new CliException(ExitCodes.Usage, "--time-scale must be a positive number");
            if (scale > MaxTrackedTimeScale && cameraSpec.Trim().StartsWith("synthetic", StringComparison.OrdinalIgnoreCase))
            {
                throw new CliException(ExitCodes.Usage, string.Create(CultureInfo.InvariantCulture,
                    $"--time-scale {scale} is faster than the synthetic camera can be tracked (at most {MaxTrackedTimeScale}: each frame is rendered and tracked in real time, and a pose older than 100 ms of machine time holds the session); use --time-scale {MaxTrackedTimeScale}, or --camera none (a still head) with --time-scale up to 200"));
            }
            if (parse.GetValue(dots) is < 1) throw new CliException(ExitCodes.Usage, "--dots must be at least 1");
            var planPath = parse.GetValue(plan) ?? FindDefaultPlan(ctx.Host);
            var planJson = LoadPlan(planPath, parse.GetValue(dots));
            var exe = ControllerProcess.FindExecutable(ctx.Host) ?? throw new CliException(ExitCodes.Failure,
                $"cannot find smp-controller: set SMP_CONTROLLER_EXE or install it next to smp ({ctx.Host.BaseDirectory})");
            ControllerProcess.EnsurePortFree(ctx.Controller);

            var dataDir = Directory.CreateTempSubdirectory("smp-demo-").FullName;
            var logPath = Path.Combine(dataDir, "controller.log");
            var url = ctx.Controller.ToString().TrimEnd('/');
            string[] args =
            [
                "--gantry", "sim",
                "--camera", cameraSpec,
                "--time-scale", scale.ToString(CultureInfo.InvariantCulture),
                "--data", dataDir,
                "--urls", url,
            ];
            ctx.Info($"starting {exe} on the simulated gantry at {url} (log: {logPath})");
            await using var controller = ControllerProcess.Start(exe, args, logPath);
            try
            {
                using (var probe = ctx.Connect())
                {
                    await controller.WaitUntilReadyAsync(probe, ctx.Host.Time, ReadyTimeout, ct);
                }
                await CalibrateIfNeededAsync(ctx, ct);
                return await RunCommand.RunSessionAsync(ctx, planJson, planPath, parse.GetValue(noUi), ct);
            }
            catch (CliException e) when (e.ExitCode == ExitCodes.Failure && !e.Message.Contains(logPath, StringComparison.Ordinal))
            {
                throw new CliException(e.ExitCode, e.Message + $" (controller log: {logPath})", e.Details, e) { AlreadyReported = e.AlreadyReported };
            }
            finally
            {
                // A stop sequence still under way (an e-stop from another terminal, one that outlasted the console's
                // wait) must finish before its controller goes: stopping the controller would cut it short.
                await WaitForStopSequenceAsync(ctx, controller);
                var code = await controller.StopAsync();
                ctx.Info($"controller stopped (exit code {code?.ToString(CultureInfo.InvariantCulture) ?? "?"}); log: {logPath}");
            }
        });
        return command;
    }

    /// <summary>
    /// Before the demo stops its controller: when the e-stop is latched and its stop sequence is not over, waits
    /// (bounded) until the controller reports the steps complete or a stop error. Quiet when nothing is latched or the
    /// controller no longer answers (then there is nothing left to wait for).
    /// </summary>
    private static async Task WaitForStopSequenceAsync(CommandContext ctx, ControllerProcess controller)
    {
        if (controller.HasExited) return;
        using var conn = ctx.Connect();
        var (status, _) = await StopSequence.TryReadAsync(conn);
        if (status is not { EstopLatched: true } || StopSequence.IsOver(status)) return;
        ctx.Info("emergency stop latched: waiting for the controller to finish the stop sequence before stopping it…");
        var (last, _) = await StopSequence.WaitUntilOverAsync(conn, ctx.Host.Time, StopSequence.FinishTimeout, status);
        ctx.Info(last is null ? "the controller no longer answers the safety status" : StopSequence.Verdict(last).Text);
    }

    /// <summary>Reads the plan (size-checked) and keeps its first <paramref name="dots"/> dots when given.</summary>
    public static string LoadPlan(string path, int? dots)
    {
        var text = PlanFile.ReadChecked(path);
        return dots is { } n ? PlanFile.KeepFirstDots(text, n, path) : text;
    }

    /// <summary>
    /// hardware/plans/demo-crown.json under $SMP_HARDWARE_DIR, else in the first folder above the smp executable
    /// that contains hardware/plans. Not found → exit 2.
    /// </summary>
    public static string FindDefaultPlan(CliHost host)
    {
        var hardware = host.GetEnvironmentVariable("SMP_HARDWARE_DIR");
        if (!string.IsNullOrWhiteSpace(hardware)) return Path.Combine(hardware, DefaultPlan);
        for (var dir = new DirectoryInfo(host.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (Directory.Exists(Path.Combine(dir.FullName, "hardware", "plans"))) return Path.Combine(dir.FullName, "hardware", DefaultPlan);
        }
        throw new CliException(ExitCodes.Usage, $"cannot find hardware/{DefaultPlan} above {host.BaseDirectory}: set SMP_HARDWARE_DIR or pass --plan FILE");
    }
    /// <summary>
    /// A tracked demo needs a camera-to-gantry calibration like any tracked session: the demo's fresh
    /// controller has none, so it homes and runs a 15-stop calibration first (as an engineer would).
    /// </summary>
    private static async Task CalibrateIfNeededAsync(CommandContext ctx, CancellationToken ct)
    {
        using var conn = ctx.Connect();
        var list = await conn.Calibration.ListCalibrationsAsync(new ListCalibrationsRequest { Limit = 1 }, deadline: conn.Deadline(), cancellationToken: ct);
        if (!list.CalibrationRequired || list.CurrentGantryId.Length > 0) return;
        var machine = await conn.Machine.GetStatusAsync(new GetMachineStatusRequest(), deadline: conn.Deadline(), cancellationToken: ct);
        if (!machine.Homed)
        {
            ctx.Info("machine is not homed: homing now (the gantry moves to its home switches)…");
            await MotionCall.RunAsync(ctx, conn, "homing",
                token => conn.Machine.HomeAsync(new HomeRequest(), deadline: conn.Deadline(ControllerConnection.HomeTimeout), cancellationToken: token).ResponseAsync, ct);
        }
        ctx.Info($"camera {list.Camera} has no camera-to-gantry calibration: calibrating first (smp calibrate gantry --points 15)…");
        var reply = await MotionCall.RunAsync(ctx, conn, "calibration",
            token => conn.Calibration.CalibrateGantryAsync(new CalibrateGantryRequest { Points = 15, Notes = "smp demo" },
                deadline: conn.Deadline(ControllerConnection.CalibrationTimeout), cancellationToken: token).ResponseAsync, ct);
        if (!reply.Calibration.Valid) throw new CliException(ExitCodes.Failure, $"the demo's calibration {reply.Calibration.Id} is not valid: {string.Join("; ", reply.Warnings)}");
        ctx.Info($"calibration {reply.Calibration.Id}: validation RMS {Formatting.Mm(reply.Validation.Rms)} mm, p95 {Formatting.Mm(reply.Validation.P95)} mm ({Formatting.Number(reply.Seconds, "0.0")} s)");
    }
}
