using System.CommandLine;
using System.Globalization;
using System.Text;
using Grpc.Core;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli.Commands;

/// <summary>
/// <c>smp demo</c>: starts a controller process on the simulated gantry, runs a plan exactly as <c>smp run</c>,
/// then stops the controller. Its data folder is removed after a clean end; otherwise it is kept and the demo says
/// how to bring that controller back on it (the advice to resolve and resume must be one the operator can follow).
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
        var keep = new Option<bool>("--keep")
        {
            Description = "Keep the demo's data folder (database and log) even after a completed session, and print how to start its controller again",
        };
        var command = new Command("demo", "Start a controller on the simulated gantry, run a plan as 'smp run' does "
            + "(e / Esc / Ctrl+C = EMERGENCY STOP, space = pause/resume), then stop the controller. The controller is "
            + "$SMP_CONTROLLER_EXE or smp-controller next to smp; its data and log go to a new folder $TMPDIR/smp-demo-*, "
            + "removed after a session COMPLETED with nothing in doubt; otherwise (or with --keep) it is kept and the demo "
            + "prints how to start that controller again to resolve and resume the session.")
        {
            dots,
            camera,
            timeScale,
            noUi,
            plan,
            keep,
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

            // Folders of earlier demos that were not kept and whose demo no longer runs (a console killed mid-demo).
            var stale = DemoFolder.RemoveStale(Path.GetTempPath());
            if (stale.Count > 0) ctx.Info($"removed {stale.Count} data folder(s) left by earlier demos that no longer run and were not kept: {string.Join(", ", stale)}");
            var folder = DemoFolder.Create(DemoProcess.Current());
            var dataDir = folder.Path;
            var logPath = Path.Combine(dataDir, "controller.log");
            var url = ctx.Controller.ToString().TrimEnd('/');
            string[] args =
            [
                "--gantry", "sim",
                "--camera", cameraSpec,
                "--time-scale", scale.ToString(CultureInfo.InvariantCulture),
                "--data", dataDir,
                "--urls", url,
                // The demo's own controller, on loopback, for this user only: the development mode without tokens.
                "--insecure-loopback",
            ];
            ctx.Info($"starting {exe} on the simulated gantry at {url} in the development loopback mode (no TLS, no tokens: see the README's Security) (data and log: {dataDir})");
            ControllerProcess controller;
            try
            {
                controller = ControllerProcess.Start(exe, args, logPath);
            }
            catch (CliException)
            {
                folder.Remove(); // nothing ran on it: nothing to keep
                throw;
            }
            int? exitCode = null;
            try
            {
                folder.SetController(controller.Identity);
                using (var probe = ctx.Connect())
                {
                    await controller.WaitUntilReadyAsync(probe, ctx.Host.Time, ReadyTimeout, ct);
                }
                await CalibrateIfNeededAsync(ctx, ct);
                // The demo measures the scalp with 8 probes (the fewest a registration may rest on, and some to spare): it shows the step without the wait of a clinic's 16.
                exitCode = await RunCommand.RunSessionAsync(ctx, planJson, planPath, parse.GetValue(noUi), ct, surfacePoints: 8);
                return exitCode.Value;
            }
            catch (CliException e) when (e.ExitCode == ExitCodes.Failure && !e.Message.Contains(logPath, StringComparison.Ordinal))
            {
                throw new CliException(e.ExitCode, e.Message + $" (controller log: {logPath})", e.Details, e) { AlreadyReported = e.AlreadyReported };
            }
            finally
            {
                IReadOnlyList<Session>? sessions = null;
                try
                {
                    // A stop sequence still under way (an e-stop from another terminal, one that outlasted the console's
                    // wait) must finish before its controller goes: stopping the controller would cut it short.
                    await WaitForStopSequenceAsync(ctx, controller);
                    sessions = await ReadSessionsAsync(ctx, controller);
                    var code = await controller.StopAsync();
                    ctx.Info($"controller stopped (exit code {code?.ToString(CultureInfo.InvariantCulture) ?? "?"}); log: {logPath}");
                }
                finally
                {
                    // Once more if the stop above was cut short by an error: the folder may only go once the controller is gone.
                    var stopped = await StopQuietlyAsync(controller);
                    await controller.DisposeAsync();
                    Conclude(ctx, folder, new DemoEnd(parse.GetValue(keep), exitCode, sessions, stopped), exe, args, url);
                }
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

    /// <summary>Stops the controller (a no-op when it already exited); true once it has exited.</summary>
    private static async Task<bool> StopQuietlyAsync(ControllerProcess controller)
    {
        try
        {
            await controller.StopAsync();
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or System.ComponentModel.Win32Exception)
        {
            // Reported below as a controller that did not stop.
        }
        return controller.HasExited;
    }

    /// <summary>The sessions of the demo's controller, read before it stops (short deadline); null when it does not answer.</summary>
    private static async Task<IReadOnlyList<Session>?> ReadSessionsAsync(CommandContext ctx, ControllerProcess controller)
    {
        if (controller.HasExited) return null;
        using var conn = ctx.Connect();
        try
        {
            // Not the command's token: after Ctrl+C it is cancelled, and this answer decides whether the folder is kept.
            var reply = await conn.Sessions.ListAsync(new ListSessionsRequest(), deadline: conn.Deadline(TimeSpan.FromSeconds(5)));
            return [.. reply.Sessions];
        }
        catch (RpcException)
        {
            return null;
        }
    }

    /// <summary>How a demo ended, as far as keeping its folder goes.</summary>
    /// <param name="KeepAsked">--keep was given.</param>
    /// <param name="ExitCode">The session's exit code; null when the demo failed or was interrupted before it ended.</param>
    /// <param name="Sessions">The controller's sessions after the end; null when they could not be read.</param>
    /// <param name="ControllerStopped">The controller process has exited.</param>
    internal sealed record DemoEnd(bool KeepAsked, int? ExitCode, IReadOnlyList<Session>? Sessions, bool ControllerStopped)
    {
        /// <summary>Why the folder is kept, or null when it may go: only a clean end (every session COMPLETED, nothing in doubt, exit 0) loses nothing.</summary>
        public string? KeepReason()
        {
            if (!ControllerStopped) return "its controller did not stop";
            if (KeepAsked) return "--keep";
            if (ExitCode is null) return "the demo did not finish";
            if (Sessions is null) return "the controller's sessions could not be read at the end";
            var open = Sessions.FirstOrDefault(s => s.State != SessionState.Completed || (s.Dots?.InDoubt ?? 0) > 0);
            if (open is not null) return $"session {open.Id} ended {Formatting.StateName(open.State)}{((open.Dots?.InDoubt ?? 0) > 0 ? $" with {open.Dots!.InDoubt} dot(s) in doubt" : "")}";
            if (ExitCode != ExitCodes.Success) return $"the demo ended with exit code {ExitCode}";
            return Sessions.Count == 0 ? "no session ran" : null;
        }
    }

    /// <summary>After the controller stopped: removes the folder after a clean end, else marks it kept and says how to go on with it.</summary>
    private static void Conclude(CommandContext ctx, DemoFolder folder, DemoEnd end, string exe, IReadOnlyList<string> args, string url)
    {
        var reason = end.KeepReason();
        if (reason is null)
        {
            try
            {
                folder.Remove();
                ctx.Info($"removed the demo's data folder {folder.Path}: the session completed with nothing in doubt (--keep keeps it)");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                ctx.Info($"could not remove the demo's data folder {folder.Path}: {e.Message}");
            }
            return;
        }
        try
        {
            folder.MarkKept(reason);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            ctx.Info($"note: could not mark {folder.Path} as kept ({e.Message}); a later demo may remove it");
        }
        ctx.Info(KeptText(folder.Path, reason, end, exe, args, url, CliCommands.ControllerArg(ctx)));
    }

    /// <summary>
    /// The kept folder's advice: the exact command line that starts the demo's controller again on its folder, then the
    /// commands to use against it for the sessions that did not complete (resolve the dots in doubt, home, resume).
    /// </summary>
    internal static string KeptText(string dataDir, string reason, DemoEnd end, string exe, IReadOnlyList<string> args, string url, string? controllerArg)
    {
        var target = string.IsNullOrEmpty(controllerArg) ? "" : " " + controllerArg;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"kept the demo's data folder {dataDir} ({reason}).");
        if (!end.ControllerStopped)
        {
            sb.AppendLine().Append(CultureInfo.InvariantCulture, $"Its controller still runs at {url}: stop it before starting another on this folder.");
        }
        sb.AppendLine().Append("To go on with it, start its controller again on that folder (in another terminal; Ctrl+C there stops it):");
        sb.AppendLine().Append("  ").Append(string.Join(' ', new[] { exe }.Concat(args).Select(ShellWord)));
        var open = end.Sessions?.Where(s => s.State != SessionState.Completed && s.State != SessionState.Aborted).ToList() ?? [];
        if (open.Count > 0)
        {
            sb.AppendLine().Append("then, against it:");
            foreach (var s in open)
            {
                var inDoubt = s.Dots?.InDoubt ?? 0;
                if (inDoubt > 0)
                {
                    var ids = s.InDoubt.Select(d => d.DotId).ToList();
                    var dots = ids.Count == inDoubt && ids.Count <= 5 ? string.Concat(ids.Select(id => " --dot " + id)) : " --all-in-doubt";
                    sb.AppendLine().Append(CultureInfo.InvariantCulture, $"  inspect the skin, then ONE of:");
                    foreach (var resolution in new[] { "placed", "redo", "skip" })
                    {
                        sb.AppendLine().Append(CultureInfo.InvariantCulture, $"    smp session resolve {s.Id}{dots} --as {resolution}{target}");
                    }
                }
                sb.AppendLine().Append(CultureInfo.InvariantCulture, $"  smp machine home{target}");
                sb.AppendLine().Append(CultureInfo.InvariantCulture, $"  smp session resume {s.Id}{target}");
            }
        }
        else if (end.Sessions is { Count: > 0 } all)
        {
            sb.AppendLine().Append("then, against it:");
            foreach (var s in all) sb.AppendLine().Append(CultureInfo.InvariantCulture, $"  smp session show {s.Id}{target}");
        }
        else
        {
            sb.AppendLine().Append(CultureInfo.InvariantCulture, $"then, against it: smp sessions{target}");
        }
        sb.AppendLine().Append(CultureInfo.InvariantCulture, $"Later demos leave it alone; remove it when done: rm -r {ShellWord(dataDir)}");
        return sb.ToString();
    }

    /// <summary><paramref name="word"/> as one POSIX shell word: as is when plain, else in single quotes.</summary>
    internal static string ShellWord(string word) =>
        word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '/' or ':' or '=' or '@' or '%' or '+' or ',')
            ? word
            : "'" + word.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

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
