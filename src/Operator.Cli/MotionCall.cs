using System.Text.Json.Nodes;
using Grpc.Core;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli;

/// <summary>
/// A long call that moves the machine outside a session (homing, a jog, a gantry calibration, a drift check).
/// An emergency stop flushes the firmware under such a call, which then fails with whatever the flush caused
/// ("gantry: flushed by soft reset", a refused motion line, …). That failure is not the story the operator must
/// read: after it, the console asks the safety status and, when the latch was set while the call ran, waits for
/// the stop sequence to finish and reports "emergency stop during WHAT" with the steps the controller reports
/// (exit 3). One place for every such call, so that keys during long calls (issue #15) can be added here.
/// </summary>
internal static class MotionCall
{
    private static readonly TimeSpan PreflightTimeout = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Runs <paramref name="call"/>; <paramref name="what"/> names it for the operator ("homing", "calibration",
    /// "the jog", "the drift check"). Throws <see cref="CliException"/> with exit 3 when an e-stop latched while it ran.
    /// Ctrl+C while it runs is a controlled stop: the call is cancelled (the controller then stops the motion:
    /// jog cancel, feed hold and retract, or a reset of the homing cycle; a calibration stopped part-way is not
    /// stored), the console waits until the machine reports it is no longer moving, and exits 3 saying where it stands.
    /// </summary>
    public static async Task<T> RunAsync<T>(CommandContext ctx, ControllerConnection conn, string what, Func<CancellationToken, Task<T>> call, CancellationToken ct)
    {
        // Also warms the safety channel. Latched before the call: the controller refuses it with its own message,
        // which is the truth; only a latch that appears during the call is "an emergency stop during" it.
        var before = await conn.Safety.GetSafetyStatusAsync(new GetSafetyStatusRequest(), deadline: conn.Deadline(PreflightTimeout), cancellationToken: ct).ConfigureAwait(false);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var interrupted = 0;
        // In a terminal the progress line is rewritten in place: a message first clears it.
        void Say(string message) => ctx.Info(ctx.Host.StdoutIsTerminal && !ctx.Json ? "\r\u001b[K" + message : message);
        using var subscription = ctx.Host.Interrupts?.Subscribe(() =>
        {
            if (Interlocked.Exchange(ref interrupted, 1) != 0) return;
            Say($"Ctrl+C: stopping {what} (the controller stops the motion)…");
            stop.Cancel();
        });
        // In a terminal the keys are read as during a session: e / Esc = emergency stop, Ctrl+C (a key in raw mode) = stop.
        using var keysStop = new CancellationTokenSource();
        Task<SafetyStatus>? emergencyStop = null;
        var keys = ctx.Host.Keys is { } input && ctx.Host.StdoutIsTerminal && !ctx.Json
            ? KeyLoopAsync(input, key =>
            {
                var ctrlC = key.KeyChar == '\u0003' || (key.Key == ConsoleKey.C && key.Modifiers.HasFlag(ConsoleModifiers.Control));
                if (ctrlC)
                {
                    if (Interlocked.Exchange(ref interrupted, 1) == 0)
                    {
                        Say($"Ctrl+C: stopping {what} (the controller stops the motion)…");
                        stop.Cancel();
                    }
                }
                else if ((key.Key == ConsoleKey.Escape || key.KeyChar is 'e' or 'E') && emergencyStop is null)
                {
                    var how = key.Key == ConsoleKey.Escape ? "Esc key" : "e key";
                    Say($"EMERGENCY STOP ({how})");
                    emergencyStop = conn.Safety.EmergencyStopAsync(new EmergencyStopRequest { Source = "smp console (" + how + ")", Reason = $"operator pressed {how} during {what}" },
                        deadline: conn.Deadline(ControllerConnection.EmergencyStopTimeout)).ResponseAsync;
                }
            }, ctx.Host.Time, keysStop.Token)
            : null;
        if (keys is not null) ctx.Info($"{what}: e / Esc = EMERGENCY STOP, Ctrl+C stops it");
        else if (subscription is not null) ctx.Info($"{what}: Ctrl+C stops it, `smp estop` from any terminal is the emergency stop");
        using var progressStop = new CancellationTokenSource();
        var progress = ctx.Json ? Task.CompletedTask : ProgressLoopAsync(ctx, conn, progressStop.Token);
        try
        {
            var result = await call(stop.Token).ConfigureAwait(false);
            // An e-stop pressed as the call finished is still reported, never swallowed by a success.
            if (emergencyStop is not null) throw await EmergencyStopKeyAsync(ctx, conn, what, emergencyStop, null).ConfigureAwait(false);
            return result;
        }
        catch (RpcException e) when (emergencyStop is not null && Volatile.Read(ref interrupted) == 0)
        {
            throw await EmergencyStopKeyAsync(ctx, conn, what, emergencyStop, e).ConfigureAwait(false);
        }
        catch (Exception e) when (Volatile.Read(ref interrupted) == 1 && e is RpcException or OperationCanceledException)
        {
            throw await StoppedByOperatorAsync(ctx, conn, what).ConfigureAwait(false);
        }
        catch (RpcException e) when (!before.EstopLatched)
        {
            var (after, _) = await StopSequence.TryReadAsync(conn).ConfigureAwait(false);
            if (after is not { EstopLatched: true }) throw;
            throw await StoppedDuringAsync(ctx, conn, what, after, e).ConfigureAwait(false);
        }
        finally
        {
            await progressStop.CancelAsync().ConfigureAwait(false);
            await progress.ConfigureAwait(false);
            await keysStop.CancelAsync().ConfigureAwait(false);
            if (keys is not null) await keys.ConfigureAwait(false);
        }
    }

    /// <summary>How often the progress line is written: rewritten in place in a terminal, a new line otherwise.</summary>
    private static readonly TimeSpan ProgressInTerminalEvery = TimeSpan.FromMilliseconds(500);

    private static readonly TimeSpan ProgressLineEvery = TimeSpan.FromSeconds(5);

    /// <summary>
    /// While the call runs: the controller's machine status stream (its activity: stops done / total, the step,
    /// the gantry state) as one progress line on stderr. Never throws; the line is cleared when it ends.
    /// </summary>
    private static async Task ProgressLoopAsync(CommandContext ctx, ControllerConnection conn, CancellationToken ct)
    {
        var inPlace = ctx.Host.StdoutIsTerminal;
        var every = inPlace ? ProgressInTerminalEvery : ProgressLineEvery;
        long? last = null;
        var written = false;
        try
        {
            using var watch = conn.Machine.WatchStatus(new WatchMachineStatusRequest(), cancellationToken: ct);
            while (await watch.ResponseStream.MoveNext(ct).ConfigureAwait(false))
            {
                var m = watch.ResponseStream.Current;
                if (m.Activity is null) continue;
                var now = ctx.Host.Time.GetTimestamp();
                if (last is { } before && ctx.Host.Time.GetElapsedTime(before, now) < every) continue;
                last = now;
                var text = ProgressText(m, ctx.Host.Time.GetLocalNow());
                if (inPlace) await ctx.Stderr.WriteAsync("\r\u001b[K" + text).ConfigureAwait(false);
                else await ctx.Stderr.WriteLineAsync(text).ConfigureAwait(false);
                written = true;
            }
        }
        catch (RpcException)
        {
            // Cancelled as the call ends, or the stream is not available: the call's own outcome is what counts.
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            if (inPlace && written) await ctx.Stderr.WriteAsync("\r\u001b[K").ConfigureAwait(false);
        }
    }

    /// <summary>
    /// "gantry calibration · stop 4 of 15 · 12 s · ETA 14:32:10 (33 s left) · stop 5: moving … · gantry Run x … y … z …":
    /// elapsed on the controller's clock (its status time minus the activity's start), the ETA from the mean time per
    /// step so far, in this computer's wall time.
    /// </summary>
    public static string ProgressText(MachineStatus m, DateTimeOffset localNow)
    {
        var a = m.Activity;
        var parts = new List<string> { a.Name };
        var elapsedS = m.At is not null && a.StartedAt is not null ? Math.Max(0, (m.At.ToDateTimeOffset() - a.StartedAt.ToDateTimeOffset()).TotalSeconds) : double.NaN;
        if (a.StepsTotal > 0) parts.Add($"{a.StepsDone}/{a.StepsTotal} done");
        if (double.IsFinite(elapsedS)) parts.Add(Formatting.Duration(elapsedS) + " elapsed");
        if (a.StepsTotal > 0 && a.StepsDone > 0 && double.IsFinite(elapsedS))
        {
            var leftS = elapsedS / a.StepsDone * (a.StepsTotal - a.StepsDone);
            parts.Add($"ETA {localNow.AddSeconds(leftS).ToString("HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture)} ({Formatting.Duration(leftS)} left)");
        }
        else if (a.StepsTotal > 0)
        {
            parts.Add("ETA after the first step");
        }
        if (!string.IsNullOrEmpty(a.Step)) parts.Add(a.Step);
        var p = m.Position;
        // grbl answers no status query during its homing cycle: the last report is from before it, so none is shown.
        parts.Add(a.Name == "homing"
            ? "no position reports during the homing cycle"
            : $"gantry {(string.IsNullOrEmpty(m.State) ? "?" : m.State)}" + (p is null ? "" : $" x {Formatting.Mm(p.XMm)} y {Formatting.Mm(p.YMm)} z {Formatting.Mm(p.ZMm)}"));
        return string.Join(" · ", parts);
    }

    /// <summary>The outcome of an e-stop key during <paramref name="what"/>: its answer first (bounded by its deadline), then the latch as the controller reports it.</summary>
    private static async Task<CliException> EmergencyStopKeyAsync(CommandContext ctx, ControllerConnection conn, string what, Task<SafetyStatus> emergencyStop, RpcException? failure)
    {
        try
        {
            await emergencyStop.ConfigureAwait(false);
        }
        catch (RpcException)
        {
            // Reported from the safety status read below.
        }
        var (after, _) = await StopSequence.TryReadAsync(conn).ConfigureAwait(false);
        if (after is not { EstopLatched: true }) return new CliException(ExitCodes.Failure, $"EMERGENCY STOP NOT CONFIRMED during {what}: PRESS THE HARD-WIRED E-STOP");
        return await StoppedDuringAsync(ctx, conn, what, after, failure).ConfigureAwait(false);
    }

    private static readonly TimeSpan KeyPollEvery = TimeSpan.FromMilliseconds(30);

    /// <summary>Reads keys (raw mode: Ctrl+C arrives as a key) until <paramref name="ct"/>; TryReadKey never blocks, so it is asked every 30 ms.</summary>
    private static async Task KeyLoopAsync(IKeyInput keys, Action<ConsoleKeyInfo> onKey, TimeProvider time, CancellationToken ct)
    {
        using var raw = keys.EnterRawMode();
        while (!ct.IsCancellationRequested)
        {
            while (keys.TryReadKey(out var key)) onKey(key);
            try
            {
                await Task.Delay(KeyPollEvery, time, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static bool IsMoving(MachineStatus m) => m.State is "Run" or "Jog" or "Home" or "Hold:1" or "Door:2" or "Door:3";

    /// <summary>How long the console waits, after Ctrl+C, for the machine to report it stopped moving.</summary>
    private static readonly TimeSpan StoppedTimeout = TimeSpan.FromSeconds(15);

    /// <summary>The exit-3 error after Ctrl+C: the machine's state once it reports it is not moving (measured, not assumed).</summary>
    private static async Task<CliException> StoppedByOperatorAsync(CommandContext ctx, ControllerConnection conn, string what)
    {
        MachineStatus? machine = null;
        try
        {
            // Each answer is a fresh firmware report (GetStatus); the watch only paces the asking (one tick per status poll).
            using var watch = conn.Machine.WatchStatus(new WatchMachineStatusRequest(), deadline: conn.Deadline(StoppedTimeout));
            while (true)
            {
                try
                {
                    machine = await conn.Machine.GetStatusAsync(new GetMachineStatusRequest(), deadline: conn.Deadline(TimeSpan.FromSeconds(3))).ConfigureAwait(false);
                    // Stopped means the controller's operation has ended too (its own stop, a lift of the needle,
                    // runs inside it), not only that the gantry is still between two moves.
                    if (!IsMoving(machine) && machine.Activity is null) break;
                }
                catch (RpcException e) when (e.StatusCode != StatusCode.DeadlineExceeded)
                {
                    // The controller may be resetting the board just now: ask again at the next tick.
                }
                if (!await watch.ResponseStream.MoveNext(CancellationToken.None).ConfigureAwait(false)) break;
            }
        }
        catch (RpcException)
        {
            // Reported below from what was last read, if anything.
        }
        if (machine is null)
        {
            return new CliException(ExitCodes.Stopped, $"{what} stopped by Ctrl+C, but the machine's state could not be read afterwards: check it (smp machine status) before anything else");
        }
        var moving = IsMoving(machine);
        var p = machine.Position;
        var where = p is null ? "" : $" at x {Formatting.Mm(p.XMm)} y {Formatting.Mm(p.YMm)} z {Formatting.Mm(p.ZMm)} mm";
        if (moving)
        {
            return new CliException(ExitCodes.Stopped, $"{what} stopped by Ctrl+C, but the gantry still reports {machine.State}{where} after {StoppedTimeout.TotalSeconds:0} s: USE THE HARD-WIRED E-STOP");
        }
        if (machine.Activity is { } busy)
        {
            return new CliException(ExitCodes.Stopped,
                $"{what} stopped by Ctrl+C, but after {StoppedTimeout.TotalSeconds:0} s the controller still reports {busy.Name}{(busy.Step.Length > 0 ? " (" + busy.Step + ")" : "")}; the gantry is {machine.State}{where} now: check it (smp machine status) before anything else");
        }
        return new CliException(ExitCodes.Stopped, $"{what} stopped by Ctrl+C: gantry {machine.State}{where}, needle {(machine.NeedleOn ? "ON" : "off")}{(machine.Homed ? "" : ", NOT homed")}");
    }

    /// <summary>The exit-3 error for an e-stop during <paramref name="what"/>, once the stop sequence is over (bounded).</summary>
    private static async Task<CliException> StoppedDuringAsync(CommandContext ctx, ControllerConnection conn, string what, SafetyStatus latched, RpcException? failure)
    {
        if (!StopSequence.IsOver(latched)) ctx.Info($"emergency stop during {what}: waiting for the controller to finish the stop sequence…");
        var (status, _) = await StopSequence.WaitUntilOverAsync(conn, ctx.Host.Time, StopSequence.FinishTimeout, latched).ConfigureAwait(false);
        status ??= latched;
        var verdict = StopSequence.Verdict(status);
        MachineStatus? machine = null;
        try
        {
            machine = await conn.Machine.GetStatusAsync(new GetMachineStatusRequest(), deadline: conn.Deadline(TimeSpan.FromSeconds(3))).ConfigureAwait(false);
        }
        catch (RpcException)
        {
            // The stop is reported without the machine line; nothing is claimed about it.
        }
        var message = $"emergency stop during {what} ({StopSequence.Origin(status)}); stop steps: {StopSequence.Steps(status)}";
        if (verdict.Failed) message += "; " + verdict.Text;
        if (machine is not null)
        {
            message += $"; needle {(machine.NeedleOn ? "ON" : "off")}, gantry {(string.IsNullOrEmpty(machine.State) ? "?" : machine.State)}{(machine.Homed ? "" : ", NOT homed (home again after 'smp estop --reset')")}";
        }
        var details = new JsonObject
        {
            ["during"] = what,
            ["safety"] = JsonOutput.Message(status),
            ["callError"] = failure is null ? null : CommandContext.DescribeRpcError(failure, conn.Address),
        };
        if (machine is not null) details["machine"] = JsonOutput.Message(machine);
        return new CliException(ExitCodes.Stopped, message, details, failure);
    }
}
