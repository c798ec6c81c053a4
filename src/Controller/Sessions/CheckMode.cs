using System.Globalization;
using System.Text;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;

namespace SmpRobot.Controller.Sessions;

/// <summary>A line the firmware refused in check mode.</summary>
/// <param name="LineNumber">1-based position of the line in the checked program.</param>
/// <param name="Line">The line as sent.</param>
/// <param name="ErrorCode">grbl's error:N; 0 when the line could not even be sent (see <paramref name="Meaning"/>).</param>
/// <param name="Meaning">What the code means.</param>
public sealed record CheckError(int LineNumber, string Line, int ErrorCode, string Meaning)
{
    public override string ToString() => ErrorCode > 0
        ? string.Create(CultureInfo.InvariantCulture, $"line {LineNumber} '{Line}': error:{ErrorCode} {Meaning}")
        : string.Create(CultureInfo.InvariantCulture, $"line {LineNumber} '{Line}': {Meaning}");
}

/// <summary>The alarm that ended a check (grbl's soft limit, ALARM:2, also fires in check mode).</summary>
/// <param name="LineNumber">1-based line that raised it (the first line without an answer).</param>
public sealed record CheckAlarm(int LineNumber, string Line, int AlarmCode, string Meaning)
{
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"line {LineNumber} '{Line}': ALARM:{AlarmCode} {Meaning}");
}

/// <summary>What check mode found.</summary>
/// <param name="LinesTotal">Lines in the program.</param>
/// <param name="LinesChecked">Lines the firmware answered (ok or error:N).</param>
/// <param name="Errors">Refused lines, in order (at most <see cref="CheckModeOptions.MaxListedErrors"/>).</param>
/// <param name="TotalErrors">All refused lines, listed or not.</param>
/// <param name="Alarm">The alarm that stopped the check, if one did; the lines after it were not checked.</param>
/// <param name="Interrupted">Why the check stopped early for another reason (link fault, stop, firmware left check mode); empty when it did not.</param>
/// <param name="Unlocked">True when the alarm lock of a check-mode soft limit was cleared with <c>$X</c> (nothing moved, the position is still the homed one).</param>
public sealed record CheckReport(int LinesTotal, int LinesChecked, IReadOnlyList<CheckError> Errors, int TotalErrors, CheckAlarm? Alarm, string Interrupted, bool Unlocked)
{
    /// <summary>Every line was checked and none was refused.</summary>
    public bool Passed => TotalErrors == 0 && Alarm is null && Interrupted.Length == 0 && LinesChecked == LinesTotal;

    /// <summary>
    /// One paragraph for the operator: the verdict, each listed error and the alarm.
    /// <paramref name="dotIds"/> (optional, per line as <see cref="CheckProgram.DotIds"/>) names the dot of each line.
    /// </summary>
    public string Describe(IReadOnlyList<string?>? dotIds = null)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        if (Passed)
        {
            sb.Append(inv, $"check mode: all {LinesTotal} lines accepted by the firmware");
            return sb.ToString();
        }
        sb.Append(inv, $"check mode: {LinesChecked} of {LinesTotal} lines checked, {TotalErrors} refused");
        foreach (var e in Errors) sb.Append("; ").Append(e).Append(DotOf(e.LineNumber));
        if (TotalErrors > Errors.Count) sb.Append(inv, $"; and {TotalErrors - Errors.Count} more");
        if (Alarm is not null)
        {
            sb.Append("; ").Append(Alarm).Append(DotOf(Alarm.LineNumber))
                .Append(inv, $" (the {LinesTotal - Alarm.LineNumber} lines after it were not checked)");
            if (Unlocked) sb.Append("; the alarm lock was cleared ($X): nothing moved in check mode");
        }
        if (Interrupted.Length > 0) sb.Append("; interrupted: ").Append(Interrupted);
        return sb.ToString();

        string DotOf(int lineNumber) =>
            dotIds is not null && lineNumber >= 1 && lineNumber <= dotIds.Count && dotIds[lineNumber - 1] is { } id ? $" (dot {id})" : "";
    }
}

/// <summary>A session's program as check mode streams it, with the dot each line belongs to.</summary>
/// <param name="Lines">The lines, in wire order.</param>
/// <param name="DotIds">For each line, its dot id; null for the preamble and postamble.</param>
/// <param name="NotAimed">Dots that could not be aimed (hold reasons); their lines are not in the program.</param>
public sealed record CheckProgram(IReadOnlyList<string> Lines, IReadOnlyList<string?> DotIds, IReadOnlyList<string> NotAimed);

/// <summary>Options of <see cref="CheckMode.RunAsync(GrblClient, IEnumerable{string}, CheckModeOptions?, CancellationToken)"/>.</summary>
public sealed record CheckModeOptions
{
    /// <summary>
    /// How each program line is sent; default <see cref="GrblClient.SendLineAsync"/>. A session passes
    /// its safety gate (SafetySupervisor.SendMotionLineAsync) so an e-stop also ends the check.
    /// </summary>
    public Func<GrblClient, string, CancellationToken, ValueTask<SentLine>>? Send { get; init; }
    /// <summary>How long one answer (and entering or leaving check mode) may take. Default 10 s.</summary>
    public TimeSpan AnswerTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Refused lines listed in the report (all are counted). Default 100.</summary>
    public int MaxListedErrors { get; init; } = 100;
    /// <summary>
    /// After a check-mode soft limit (ALARM:2) grbl needs a reset and then stays alarm-locked. Nothing
    /// moved in check mode, so the homed position still holds: clear the lock with <c>$X</c>. Default true.
    /// </summary>
    public bool UnlockAfterSoftLimit { get; init; } = true;
    /// <summary>Clock of the timeouts. Default the system clock.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}

/// <summary>
/// grbl's check mode (<c>$C</c>): the firmware parses every line and checks it against its soft
/// limits without moving, so a whole program can be proved acceptable before the needle moves.
/// </summary>
/// <remarks>
/// <para><c>$C</c> is a toggle and leaving check mode resets the firmware: any reset ends check mode,
/// and a line streamed after that would move the machine for real. So the firmware must report
/// state <c>Check</c> before the first line goes out; streaming stops at once when any answer faults
/// (alarm, reset, link), when a status report shows another state, or when the send delegate refuses.</para>
/// <para>Leaving is a planned <see cref="GrblClient.SoftResetAsync"/> rather than a second <c>$C</c>:
/// both reset grbl (<c>$C</c> prints <c>[MSG:Disabled]</c>, ok, then the banner), but only the planned
/// reset tells the client to expect the banner instead of reporting an unexpected restart. A soft
/// reset while nothing moves keeps grbl's position.</para>
/// <para>A soft limit in check mode raises ALARM:2 and grbl then ignores everything until a reset:
/// the rest of the program cannot be checked (after a reset grbl has forgotten the modal state and
/// the parser position the program relies on). The report names the line and counts the rest as
/// not checked.</para>
/// </remarks>
public static class CheckMode
{
    /// <summary>Checks <paramref name="lines"/> with default options (see the other overload).</summary>
    public static Task<CheckReport> RunAsync(GrblClient client, IEnumerable<string> lines, CancellationToken cancellationToken) =>
        RunAsync(client, lines, null, cancellationToken);

    /// <summary>
    /// Marks <paramref name="gantry"/> as checking (<see cref="GantryConnection.IsChecking"/>; sessions,
    /// homing and settings reads are refused meanwhile) and checks <paramref name="lines"/> on its client.
    /// </summary>
    /// <exception cref="InvalidOperationException">Another check runs, or the firmware cannot enter check mode.</exception>
    /// <exception cref="GantryFaultException">Not connected, or the link failed before the check began.</exception>
    public static async Task<CheckReport> RunAsync(GantryConnection gantry, IEnumerable<string> lines, CheckModeOptions? options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(gantry);
        using var scope = gantry.BeginCheckMode();
        return await RunAsync(gantry.RequireClient(), lines, options, cancellationToken);
    }

    /// <summary>
    /// Enters check mode (the firmware must be Idle, or already in Check), streams every line with
    /// character counting, collects each refusal (line number, text, error code and meaning), leaves
    /// check mode with a planned soft reset, and returns the report. Refusals and a soft-limit alarm
    /// are results, not exceptions.
    /// </summary>
    /// <exception cref="InvalidOperationException">The firmware is not Idle, refused <c>$C</c>, or did not report state Check afterwards (nothing was streamed then).</exception>
    /// <exception cref="GantryFaultException">The link failed before the check began.</exception>
    /// <exception cref="TimeoutException">The firmware did not answer entering check mode in time.</exception>
    public static async Task<CheckReport> RunAsync(GrblClient client, IEnumerable<string> lines, CheckModeOptions? options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(lines);
        options ??= new CheckModeOptions();
        var program = lines as IReadOnlyList<string> ?? lines.ToList();
        var time = options.TimeProvider;
        var timeout = options.AnswerTimeout;

        await EnterAsync(client, time, timeout, cancellationToken);

        var run = new RunState(program, options.MaxListedErrors);
        void OnFault(object? sender, GantryFaultEventArgs e) => run.Stop(e.Fault);
        void OnStatus(object? sender, GrblStatusEventArgs e)
        {
            var status = e.Status;
            // Anything but Check means a reset ended check mode: further lines would move the machine.
            if (status.State != "Check") run.Stop(null, $"the firmware left check mode (state {status.State})");
        }
        client.Faulted += OnFault;
        client.StatusReceived += OnStatus;
        try
        {
            await StreamAsync(client, run, options, cancellationToken);
        }
        finally
        {
            client.Faulted -= OnFault;
            client.StatusReceived -= OnStatus;
        }

        var unlocked = await LeaveAsync(client, run, options);
        cancellationToken.ThrowIfCancellationRequested();
        return run.Report(unlocked);
    }

    /// <summary>
    /// The lines a session would stream for <paramref name="dots"/> from <paramref name="startMm"/>,
    /// aimed with the pose available now: the preamble, then per dot its travel at hover height, a
    /// sync line and the plunge/dwell/retract lines, then the postamble. Dots that cannot be aimed
    /// are listed in <see cref="CheckProgram.NotAimed"/> and left out.
    /// </summary>
    /// <param name="program">The lines of a dot.</param>
    /// <param name="aiming">Aims each dot with the pose available now…</param>
    /// <param name="dots">The dots, in order.</param>
    /// <param name="startMm">Where the gantry is.</param>
    /// <param name="gantryFromHead">…or, when given, with this pose of each dot's head position (a still head turned as a plan's patch says).</param>
    public static CheckProgram SessionProgram(DotProgram program, Aiming aiming, IEnumerable<PlannedDot> dots, Vec3 startMm, Func<PlannedDot, RigidTransform>? gantryFromHead = null)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(aiming);
        ArgumentNullException.ThrowIfNull(dots);
        var lines = new List<string>();
        var ids = new List<string?>();
        var notAimed = new List<string>();
        foreach (var line in program.SessionPreamble()) Add(line.Line, null);
        var current = program.Grid.Quantise(startMm);
        foreach (var dot in dots)
        {
            var (aim, hold) = gantryFromHead is null ? aiming.Aim(dot) : aiming.AimAt(dot, gantryFromHead(dot));
            if (aim is null)
            {
                notAimed.Add(hold ?? $"dot {dot.DotId} could not be aimed");
                continue;
            }
            foreach (var line in program.Travel(current, aim.HoverMm)) Add(line.Line, dot.DotId);
            Add(DotProgram.Sync.Line, dot.DotId);
            foreach (var line in program.Place(aim.HoverMm, aim.DepthMm, dot.DwellMs)) Add(line.Line, dot.DotId);
            current = aim.HoverMm;
        }
        foreach (var line in DotProgram.SessionPostamble()) Add(line.Line, null);
        return new CheckProgram(lines, ids, notAimed);

        void Add(string line, string? id)
        {
            lines.Add(line);
            ids.Add(id);
        }
    }

    private static async Task EnterAsync(GrblClient client, TimeProvider time, TimeSpan timeout, CancellationToken ct)
    {
        var before = await client.QueryStatusAsync(ct).WaitAsync(timeout, time, ct);
        if (before.State != "Check")
        {
            if (!before.IsIdle)
            {
                throw new InvalidOperationException($"check mode needs an Idle machine; the firmware is {before.State} (home or unlock it, and let it stop first)");
            }
            // $C toggles: it is sent only when the firmware is not in check mode already.
            var ack = await client.ExecuteAsync(MachineLines.CheckModeToggle, ct).WaitAsync(timeout, time, ct);
            if (!ack.Ok)
            {
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture, $"the firmware refused check mode ($C): error:{ack.ErrorCode} {ack.ErrorText}"));
            }
        }
        var after = await client.QueryStatusAsync(ct).WaitAsync(timeout, time, ct);
        if (after.State != "Check")
        {
            throw new InvalidOperationException($"the firmware did not enter check mode (state {after.State} after $C); nothing was streamed");
        }
    }

    private static async Task StreamAsync(GrblClient client, RunState run, CheckModeOptions options, CancellationToken ct)
    {
        var send = options.Send ?? ((c, line, token) => c.SendLineAsync(line, token));
        var pending = new Queue<(int Index, Task<LineAck> Ack)>();
        try
        {
            for (var i = 0; i < run.Program.Count && !run.Stopped; i++)
            {
                SentLine sent;
                try
                {
                    sent = await send(client, run.Program[i], ct);
                }
                catch (ArgumentException e)
                {
                    // Never reached the wire (not printable ASCII, a real-time character, too long).
                    run.AddError(i, 0, "not sent: " + e.Message);
                    continue;
                }
                catch (Exception e) when (e is GantryFaultException or MotionRefusedException)
                {
                    run.Stop(e as GantryFaultException, e.Message);
                    break;
                }
                pending.Enqueue((i, sent.Ack));
                while (pending.TryPeek(out var head) && head.Ack.IsCompleted)
                {
                    pending.Dequeue();
                    run.Record(head.Index, head.Ack);
                }
            }
            while (pending.TryDequeue(out var next))
            {
                try
                {
                    await next.Ack.WaitAsync(options.AnswerTimeout, options.TimeProvider, ct);
                }
                catch (Exception e) when (e is GantryFaultException or TimeoutException)
                {
                    // Recorded below from the task itself (a timeout leaves it incomplete).
                }
                if (!next.Ack.IsCompleted)
                {
                    run.Stop(null, string.Create(CultureInfo.InvariantCulture, $"no answer to line {next.Index + 1} within {options.AnswerTimeout.TotalSeconds:0.#} s"));
                    break;
                }
                run.Record(next.Index, next.Ack);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            run.Stop(null, "cancelled");
        }
    }

    private static async Task<bool> LeaveAsync(GrblClient client, RunState run, CheckModeOptions options)
    {
        // Leave even when the caller cancelled: a firmware left in check mode would "accept" a session's lines.
        using var leaveTimeout = new CancellationTokenSource(options.AnswerTimeout * 3, options.TimeProvider);
        var token = leaveTimeout.Token;
        try
        {
            await client.SoftResetAsync(token);
            var status = await client.QueryStatusAsync(token);
            if (status.State == "Check")
            {
                run.Stop(null, "the firmware is still in check mode after a reset");
                return false;
            }
            if (status.IsAlarm && run.AlarmCode == 2 && options.UnlockAfterSoftLimit)
            {
                var ack = await client.ExecuteAsync(MachineLines.Unlock.Line, token);
                return ack.Ok;
            }
            return false;
        }
        catch (Exception e) when (e is GantryFaultException or OperationCanceledException or InvalidOperationException)
        {
            run.Stop(null, "could not leave check mode: " + e.Message);
            return false;
        }
    }

    /// <summary>Bookkeeping of one check; Stop may come from the reader loop (events), the rest from the streaming task.</summary>
    private sealed class RunState(IReadOnlyList<string> program, int maxListed)
    {
        private readonly Lock _gate = new();
        private readonly List<CheckError> _errors = [];
        private int _totalErrors;
        private int _checked;
        private CheckAlarm? _alarm;
        private int? _alarmCode;
        private string _interrupted = "";
        private volatile bool _stopped;

        public IReadOnlyList<string> Program { get; } = program;
        public bool Stopped => _stopped;
        public int? AlarmCode { get { lock (_gate) return _alarmCode; } }

        public void Stop(GantryFaultException? fault, string? reason = null)
        {
            lock (_gate)
            {
                if (fault is { Kind: GantryFaultKind.Alarm })
                {
                    _alarmCode ??= fault.Code;
                }
                else if (_interrupted.Length == 0 && _alarmCode is null && (reason ?? fault?.Message) is { } why)
                {
                    _interrupted = why;
                }
            }
            _stopped = true;
        }

        public void AddError(int index, int code, string meaning)
        {
            lock (_gate)
            {
                _totalErrors++;
                if (_errors.Count < maxListed) _errors.Add(new CheckError(index + 1, Program[index], code, meaning));
            }
        }

        public void Record(int index, Task<LineAck> ack)
        {
            if (ack.IsCompletedSuccessfully)
            {
                var result = ack.Result;
                lock (_gate) _checked++;
                if (!result.Ok) AddError(index, result.ErrorCode, result.ErrorText);
                return;
            }
            var fault = ack.Exception?.InnerException as GantryFaultException;
            lock (_gate)
            {
                // The first line without an answer when the alarm came is the line that raised it.
                if (fault is { Kind: GantryFaultKind.Alarm } && _alarm is null)
                {
                    _alarmCode ??= fault.Code;
                    _alarm = new CheckAlarm(index + 1, Program[index], fault.Code, GrblProtocol.AlarmText(fault.Code));
                }
            }
            Stop(fault, fault?.Message ?? ack.Exception?.InnerException?.Message);
        }

        public CheckReport Report(bool unlocked)
        {
            lock (_gate)
            {
                var interrupted = _interrupted;
                if (_alarm is null && _alarmCode is { } code)
                {
                    // An alarm with no line of ours in flight (e.g. a limit switch): not tied to a line.
                    interrupted = interrupted.Length > 0 ? interrupted : string.Create(CultureInfo.InvariantCulture, $"ALARM:{code} {GrblProtocol.AlarmText(code)}");
                }
                return new CheckReport(Program.Count, _checked, [.. _errors], _totalErrors, _alarm, interrupted, unlocked);
            }
        }
    }
}
