using System.Globalization;
using System.Text;
using SmpRobot.Contracts.V1;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace SmpRobot.Operator.Cli;

/// <summary>What the live view shows at one moment: the latest session, machine and safety status.</summary>
/// <param name="Session">Latest session snapshot.</param>
/// <param name="Machine">Latest machine status; null until the controller sent one.</param>
/// <param name="Safety">Latest safety status (from the heartbeat stream); null when unknown.</param>
/// <param name="LastEvent">Latest event message, e.g. "held: operator heartbeat lost".</param>
/// <param name="Notice">The console's own notice, e.g. the result of an e-stop request.</param>
/// <param name="KeysEnabled">Whether the key legend applies (keys are read).</param>
internal sealed record SessionSnapshot(
    Session Session,
    MachineStatus? Machine = null,
    SafetyStatus? Safety = null,
    string? LastEvent = null,
    string? Notice = null,
    bool KeysEnabled = true)
{
    /// <summary>
    /// True for the final view: <see cref="Machine"/> and <see cref="Safety"/> were read after the session ended (null =
    /// could not be read, shown as not measured rather than as the last state seen), and no key is read any more.
    /// </summary>
    public bool Ended { get; init; }

    /// <summary>
    /// Set while the controller answers that its record store cannot be read (its message): the session shown is the last
    /// one read, before <see cref="StoreUnreachableSince"/>, not the state now.
    /// </summary>
    public string? StoreUnreachable { get; init; }

    /// <summary>When this console first heard that the record store could not be read (its clock).</summary>
    public DateTimeOffset StoreUnreachableSince { get; init; }

    /// <summary>What could not be read after the end, when <see cref="Ended"/>.</summary>
    public string? Problem { get; init; }

    /// <summary>
    /// Set while a stopped (FAULTED / EMERGENCY_STOPPED) session is shown with a resume key: what still refuses a
    /// resume, as last measured. Null otherwise.
    /// </summary>
    public ResumeReadiness? Resume { get; init; }
}

/// <summary>Whether a stopped session can be resumed from this console now, and if not, every reason with its fix.</summary>
/// <param name="Ready">Nothing refuses a resume.</param>
/// <param name="Text">"ready…" or the reasons, each naming the command that clears it.</param>
internal sealed record ResumeReadiness(bool Ready, string Text)
{
    /// <summary>
    /// From the session (its dots in doubt) and the controller's start check for this console (latch, connection,
    /// settings, calibration, patient switch, homing). The controller decides again when the resume is asked.
    /// </summary>
    public static ResumeReadiness Of(Session s, StartReadiness start)
    {
        var reasons = new List<string>();
        var inDoubt = s.Dots?.InDoubt ?? 0;
        if (inDoubt > 0) reasons.Add($"{inDoubt} dot(s) in doubt: look at the skin, then smp session resolve {s.Id} --all-in-doubt --as placed|redo|skip");
        reasons.AddRange(start.Refusals);
        if (start.NeedsHoming) reasons.Add("the machine is not homed: smp machine home");
        return reasons.Count == 0
            ? new ResumeReadiness(true, "ready: press space to resume with this console supervising")
            : new ResumeReadiness(false, "not yet: " + string.Join("; ", reasons));
    }
}

/// <summary>
/// Pure rendering of sessions for the operator: the live view, the plain progress line and the end summary.
/// No I/O here, so every text is unit-testable.
/// </summary>
internal static class SessionView
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>
    /// Width of the live view's box, columns (narrower terminals get their full width): one width for the whole session,
    /// so the box does not jump as texts come and go; longer values wrap inside it.
    /// </summary>
    public const int LiveViewWidth = 100;

    /// <summary>The live view: progress bar, rate, ETA, states, position, needle, latch, reasons and the key legend.</summary>
    public static IRenderable Render(SessionSnapshot snapshot)
    {
        var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
        foreach (var (label, value, style) in Lines(snapshot))
        {
            grid.AddRow(new Markup("[grey]" + Markup.Escape(label) + "[/]"), new Markup(style is null
                ? Markup.Escape(value)
                : "[" + style + "]" + Markup.Escape(value) + "[/]"));
        }
        var s = snapshot.Session;
        return new Panel(grid)
        {
            Header = new PanelHeader(Markup.Escape($" smp session {s.Id} · {s.PlanName} ")),
            Border = BoxBorder.Rounded,
            Width = LiveViewWidth,
        };
    }

    /// <summary>The live view's rows as (label, value, markup style or null), in display order.</summary>
    public static IReadOnlyList<(string Label, string Value, string? Style)> Lines(SessionSnapshot snapshot)
    {
        var s = snapshot.Session;
        var dots = s.Dots ?? new DotCounts();
        var rows = new List<(string, string, string?)>
        {
            ("Dots", string.Format(Inv, "{0} {1}/{2} placed ({3:0.0}%)", Bar(dots.Placed, dots.Total, 30), dots.Placed, dots.Total, Percent(dots.Placed, dots.Total)), null),
            ("", string.Format(Inv, "{0} skipped · {1} pending · {2} in doubt", dots.Skipped, dots.Pending, dots.InDoubt), dots.InDoubt > 0 ? "yellow" : null),
            ("Rate", string.Format(Inv, "{0:0.00} dots/s · ETA {1}", s.DotsPerSecond, s.EtaSeconds > 0 ? Formatting.Duration(s.EtaSeconds) : "-"), null),
            snapshot.StoreUnreachable is null
                ? ("Session", Formatting.StateName(s.State), StateStyle(s.State))
                : ("Session", "NOT KNOWN NOW · last read " + Formatting.StateName(s.State) + " before " + snapshot.StoreUnreachableSince.ToString("HH:mm:ss", Inv), "bold yellow"),
        };
        if (snapshot.StoreUnreachable is { } store) rows.Add(("RECORD", StoreUnreachableText(store, snapshot.StoreUnreachableSince), "bold red"));
        var m = snapshot.Machine;
        if (m is null)
        {
            rows.Add(snapshot.Ended ? ("Gantry", "NOT MEASURED after the end: needle and position unknown", "bold red") : ("Gantry", "no status yet", "grey"));
        }
        else
        {
            var p = m.Position ?? new Position();
            rows.Add(("Gantry", string.Format(Inv, "{0} · x {1} y {2} z {3} mm{4}",
                string.IsNullOrEmpty(m.State) ? "?" : m.State, Formatting.Mm(p.XMm), Formatting.Mm(p.YMm), Formatting.Mm(p.ZMm),
                m.Connected ? "" : " · DISCONNECTED"), m.Connected ? null : "red"));
            rows.Add(("Needle", m.NeedleOn ? "ON" : "off", m.NeedleOn ? "bold yellow" : null));
            if (m.PedalConfigured) rows.Add(("Pedal", m.PedalPressed ? "held" : "RELEASED · the machine holds; press it and resume (space) to go on", m.PedalPressed ? "green" : "bold yellow"));
            if (m.PatientSwitchConfigured) rows.Add(("Patient", m.PatientSwitchPressed ? "SWITCH PRESSED · the patient asked to stop" : "ok", m.PatientSwitchPressed ? "bold yellow" : "green"));
        }
        if (s.Tracking is { } t)
        {
            rows.Add(("Tracking", TrackingText(t), TrackingStyle(t)));
            if (t.Holding) rows.Add(("HOLD", string.Format(Inv, "{0} · {1:0.0} s · needle raised, resumes by itself once tracking is steady", t.HoldReason, t.HoldSeconds), "bold yellow"));
            else if (t.Holds > 0) rows.Add(("", string.Format(Inv, "{0} automatic hold(s){1}; last: {2}", t.Holds, t.Retracts > 0 ? string.Format(Inv, ", {0} needle(s) pulled out mid-dot", t.Retracts) : "", t.LastHoldReason), "grey"));
        }
        var latched = snapshot.Safety?.EstopLatched ?? m?.EstopLatched;
        if (latched is null && snapshot.Ended)
        {
            rows.Add(("E-stop", "NOT MEASURED after the end", "bold red"));
        }
        else
        {
            rows.Add(("E-stop", latched == true ? "LATCHED" + Suffix(snapshot.Safety?.EstopReason) : "clear", latched == true ? "bold red" : "green"));
        }
        if (snapshot.Safety is { EstopLatched: true } latch && string.IsNullOrEmpty(latch.StopError))
        {
            rows.Add(StopSequence.IsOver(latch)
                ? ("Stop", StopSequence.Steps(latch), "bold")
                : ("Stop", StopSequence.Steps(latch) + " · in progress", "bold yellow"));
        }
        if (!string.IsNullOrEmpty(snapshot.Safety?.StopError))
        {
            rows.Add(("STOP ERROR", snapshot.Safety!.StopError + " · USE THE HARD-WIRED E-STOP", "bold red"));
        }
        if (!string.IsNullOrEmpty(s.Reason)) rows.Add(("Reason", s.Reason, "yellow"));
        if (!string.IsNullOrEmpty(m?.LastAlarm)) rows.Add(("Alarm", m!.LastAlarm, "red"));
        if (!string.IsNullOrEmpty(snapshot.LastEvent)) rows.Add(("Event", snapshot.LastEvent, null));
        if (!string.IsNullOrEmpty(snapshot.Notice)) rows.Add(("Console", snapshot.Notice, "bold"));
        if (!string.IsNullOrEmpty(snapshot.Problem)) rows.Add(("Not read", snapshot.Problem, "red"));
        if (DotCheckText(s) is { } checks) rows.Add(("Checks", checks.Text, checks.Style));
        rows.Add(("Report", ReportCommand(s.Id) + (string.IsNullOrEmpty(s.TreatmentId) ? "" : "  · treatment " + s.TreatmentId + ", session " + s.TreatmentSession.ToString(Inv)), "grey"));
        if (snapshot.Resume is { } resume)
        {
            rows.Add(("Resume", resume.Text, resume.Ready ? "bold green" : "yellow"));
            rows.Add(("Keys", "space / r = resume, supervised from here · q / Ctrl+C = stop watching · e / Esc = EMERGENCY STOP", "bold"));
            return rows;
        }
        rows.Add(snapshot.Ended
            ? ("Keys", "session view ended · e-stop from any terminal: smp estop", "grey")
            : ("Keys", snapshot.KeysEnabled
                ? "e / Esc / Ctrl+C = EMERGENCY STOP · space = pause/resume"
                : "Ctrl+C = EMERGENCY STOP", "bold"));
        return rows;
    }

    /// <summary>
    /// What the operator reads while the controller answers but its record store does not: the reason, that the dots and
    /// state shown were read before, and what the controller does meanwhile (it records every dot's intent before the
    /// plunge, so it does not plunge while it cannot record).
    /// </summary>
    public static string StoreUnreachableText(string reason, DateTimeOffset since) =>
        "the controller answers, its record store does not (since " + since.ToString("HH:mm:ss", Inv) + "): " + reason
        + " · the dots and state shown were read before then, not now; no dot is plunged while its intent cannot be recorded · watching again every 0.5 s · the e-stop works as ever";

    /// <summary>"tracked:synthetic:sway · pose 42 ms · quality 0.93 · head 1.2 mm/s" (or the fixed head), plus the failing gate.</summary>
    public static string TrackingText(TrackingState t)
    {
        if (!t.Tracking) return string.IsNullOrEmpty(t.Source) ? "fixed head" : t.Source;
        var text = string.Format(Inv, "{0} · pose {1} · quality {2:0.00} · head {3}",
            t.Source,
            double.IsFinite(t.PoseAgeMs) ? t.PoseAgeMs.ToString("0", Inv) + " ms" : "never seen",
            t.Quality,
            double.IsFinite(t.HeadSpeedMmPerS) ? t.HeadSpeedMmPerS.ToString("0.0", Inv) + " mm/s" : "-");
        return string.IsNullOrEmpty(t.Gate) ? text : text + " · gate: " + t.Gate;
    }

    private static string? TrackingStyle(TrackingState t) => !t.Tracking ? "grey" : string.IsNullOrEmpty(t.Gate) ? "green" : "yellow";

    /// <summary>One line for logs and non-terminal output: state, dots, rate, ETA, gantry, needle, reason.</summary>
    public static string ProgressLine(SessionSnapshot snapshot)
    {
        var s = snapshot.Session;
        var dots = s.Dots ?? new DotCounts();
        var sb = new StringBuilder();
        if (snapshot.StoreUnreachable is not null) sb.Append("RECORD STORE UNREACHABLE, last read before ").Append(snapshot.StoreUnreachableSince.ToString("HH:mm:ss", Inv)).Append(": ");
        sb.Append(Inv, $"{Formatting.StateName(s.State)} {dots.Placed}/{dots.Total} dots ({Percent(dots.Placed, dots.Total):0.0}%)");
        sb.Append(Inv, $" {s.DotsPerSecond:0.00} dots/s");
        if (s.EtaSeconds > 0) sb.Append(" ETA ").Append(Formatting.Duration(s.EtaSeconds));
        if (dots.InDoubt > 0) sb.Append(Inv, $" {dots.InDoubt} in doubt");
        if (snapshot.Machine is { } m)
        {
            var p = m.Position ?? new Position();
            sb.Append(Inv, $" | gantry {m.State} x={Formatting.Mm(p.XMm)} y={Formatting.Mm(p.YMm)} z={Formatting.Mm(p.ZMm)} needle {(m.NeedleOn ? "ON" : "off")}");
            if (m.EstopLatched) sb.Append(" E-STOP LATCHED");
        }
        if (s.Tracking is { Tracking: true } t)
        {
            sb.Append(" | ").Append(TrackingText(t));
            if (t.Holding) sb.Append(Inv, $" | HOLD {t.HoldSeconds:0.0} s: {t.HoldReason}");
        }
        if (s.DotChecks is { } c && c.OffTarget + c.NotSeen > 0 && !string.IsNullOrEmpty(s.TreatmentId))
        {
            sb.Append(Inv, $" | camera flagged {c.OffTarget + c.NotSeen} dot(s) ({c.OffTarget} off target, {c.NotSeen} not seen): smp treatment dots {s.TreatmentId}");
        }
        if (!string.IsNullOrEmpty(s.Reason)) sb.Append(" | ").Append(s.Reason);
        return sb.ToString();
    }

    /// <summary>
    /// The camera's check of a treatment session's placed dots, as the controller recorded it: how many it flagged (off
    /// target, not seen) of those it checked, and the command that lists them; null when the session is not a
    /// treatment's or none of its dots has been checked.
    /// </summary>
    public static (string Text, string? Style)? DotCheckText(Session s)
    {
        ArgumentNullException.ThrowIfNull(s);
        if (string.IsNullOrEmpty(s.TreatmentId) || s.DotChecks is not { } c) return null;
        var flagged = c.OffTarget + c.NotSeen;
        var checkedCount = c.OnTarget + flagged;
        if (checkedCount == 0) return null;
        return flagged == 0
            ? (string.Format(Inv, "camera: {0} placed dot(s) checked, all on target · smp treatment dots {1}", checkedCount, s.TreatmentId), "green")
            : (string.Format(Inv, "camera FLAGGED {0} placed dot(s): {1} off target, {2} not seen (of {3} checked) · inspect them: smp treatment dots {4}", flagged, c.OffTarget, c.NotSeen, checkedCount, s.TreatmentId), "bold yellow");
    }

    /// <summary>The command that writes the session's PDF report.</summary>
    public static string ReportCommand(string sessionId) => $"smp report {sessionId} --pdf {sessionId}.pdf";

    /// <summary>
    /// The end summary: id, plan, state, reason, dot counts, machine and kinematic time with their ratio, rate,
    /// and for dots in doubt the exact <c>smp session resolve</c> commands. <paramref name="controllerArg"/> is
    /// appended to those commands (e.g. "--controller http://host:50051"), or null.
    /// </summary>
    /// <param name="s">The session, as read after the end.</param>
    /// <param name="controllerArg">Appended to suggested commands, or null.</param>
    /// <param name="afterTheEnd">The machine lines of <see cref="AfterTheEnd"/>, placed before the dots in doubt; null for none.</param>
    public static string Summary(Session s, string? controllerArg = null, string? afterTheEnd = null)
    {
        var dots = s.Dots ?? new DotCounts();
        var sb = new StringBuilder();
        sb.AppendLine(Inv, $"Session   {s.Id}  (plan {Or(s.PlanName)}, profile {Or(s.ProfileName)})");
        if (!string.IsNullOrEmpty(s.TreatmentId)) sb.AppendLine(Inv, $"Treatment {s.TreatmentId}, session {s.TreatmentSession}  (smp treatment show {s.TreatmentId})");
        sb.AppendLine(Inv, $"State     {Formatting.StateName(s.State)}");
        sb.AppendLine(Inv, $"Reason    {Or(s.Reason)}");
        sb.AppendLine(Inv, $"Dots      {dots.Placed} placed, {dots.Skipped} skipped, {dots.Pending} pending, {dots.InDoubt} in doubt of {dots.Total}");
        var ratio = s.KinematicSeconds > 0 ? (s.ElapsedSeconds / s.KinematicSeconds).ToString("0.00", Inv) + "x the kinematic bound" : "ratio unknown";
        sb.AppendLine(Inv, $"Time      machine {Formatting.Duration(s.ElapsedSeconds)}, kinematic {Formatting.Duration(s.KinematicSeconds)} ({ratio})");
        sb.Append(Inv, $"Rate      {s.DotsPerSecond:0.00} dots/s");
        if (s.Tracking is { Tracking: true } t)
        {
            sb.AppendLine();
            sb.Append(Inv, $"Tracking  {t.Source}: {t.Holds} automatic hold(s), {t.Retracts} needle(s) pulled out mid-dot{(t.Holds > 0 ? "; last hold: " + t.LastHoldReason : "")}");
        }
        sb.AppendLine();
        if (DotCheckText(s) is { } checks) sb.AppendLine("Checks    " + checks.Text);
        sb.Append(Inv, $"Report    {ReportCommand(s.Id)}");
        if (!string.IsNullOrEmpty(afterTheEnd)) sb.AppendLine().Append(afterTheEnd);
        if (dots.InDoubt > 0)
        {
            sb.AppendLine();
            var ids = s.InDoubt.Select(d => d.DotId).ToList();
            var listed = ids.Count == dots.InDoubt && ids.Count <= 5;
            sb.AppendLine(Inv, $"{dots.InDoubt} dot(s) IN DOUBT{(ids.Count > 0 ? ": " + string.Join(", ", ids.Take(10)) + (ids.Count > 10 ? ", ..." : "") : "")}");
            sb.Append("Inspect the skin, then run ONE of:");
            var target = listed ? string.Concat(ids.Select(id => " --dot " + id)) : " --all-in-doubt";
            var extra = string.IsNullOrEmpty(controllerArg) ? "" : " " + controllerArg;
            foreach (var resolution in new[] { "placed", "redo", "skip" })
            {
                sb.AppendLine();
                sb.Append(Inv, $"  smp session resolve {s.Id}{target} --as {resolution}{extra}");
            }
        }
        return sb.ToString();
    }

    /// <summary>
    /// The summary's lines about the machine after the end: the latch and who set it, the stop steps the controller
    /// reports, the needle and gantry as measured after the end, and this console's own e-stop outcome. Nothing here
    /// comes from the console's requests alone: a state that could not be read is said to be unknown.
    /// </summary>
    public static string AfterTheEnd(FinalState? final, bool emergencyStopSent, StopVerdict? emergencyStop)
    {
        var sb = new StringBuilder();
        var safety = final?.Safety;
        if (safety is null)
        {
            sb.Append("E-stop    UNKNOWN: the safety status could not be read after the end");
        }
        else if (safety.EstopLatched)
        {
            sb.Append("E-stop    LATCHED ").Append(StopSequence.Origin(safety));
            sb.AppendLine().Append("Stop      ").Append(StopSequence.Steps(safety));
            if (!string.IsNullOrEmpty(safety.StopError)) sb.AppendLine().Append("STOP ERROR ").Append(safety.StopError).Append(": USE THE HARD-WIRED E-STOP");
            else if (!StopSequence.IsOver(safety)) sb.Append(": NOT CONFIRMED FINISHED: USE THE HARD-WIRED E-STOP");
        }
        else
        {
            sb.Append("E-stop    clear");
        }
        sb.AppendLine();
        if (final?.Machine is { } m)
        {
            var p = m.Position ?? new Position();
            sb.Append(Inv, $"Needle    {(m.NeedleOn ? "ON" : "off")}; gantry {(string.IsNullOrEmpty(m.State) ? "?" : m.State)} at x {Formatting.Mm(p.XMm)} y {Formatting.Mm(p.YMm)} z {Formatting.Mm(p.ZMm)} mm");
            if (!m.Connected) sb.Append(", DISCONNECTED");
            sb.Append(" (read after the end)");
        }
        else
        {
            sb.Append("Needle    UNKNOWN: the machine status could not be read after the end");
        }
        if (!string.IsNullOrEmpty(final?.Problem)) sb.AppendLine().Append("Not read  ").Append(final!.Problem);
        // A stop that worked is already told above; the console's own request is mentioned only when it did not.
        if (emergencyStopSent && emergencyStop is not { Failed: false })
        {
            sb.AppendLine().Append("Console   ").Append(emergencyStop?.Text ?? "NO ANSWER to this console's e-stop request: USE THE HARD-WIRED E-STOP");
        }
        return sb.ToString();
    }

    /// <summary>A text progress bar of <paramref name="width"/> cells.</summary>
    public static string Bar(int done, int total, int width)
    {
        var filled = total <= 0 ? 0 : (int)Math.Clamp(Math.Round((double)done / total * width), 0, width);
        return new string('█', filled) + new string('░', width - filled);
    }

    private static double Percent(int done, int total) => total <= 0 ? 0 : 100.0 * done / total;

    private static string Or(string? value) => string.IsNullOrEmpty(value) ? "-" : value;

    private static string Suffix(string? reason) => string.IsNullOrEmpty(reason) ? "" : " (" + reason + ")";

    private static string? StateStyle(SessionState state) => state switch
    {
        SessionState.Running => "green",
        SessionState.Completed => "bold green",
        SessionState.Pausing or SessionState.Paused => "yellow",
        SessionState.EmergencyStopped or SessionState.Faulted or SessionState.Aborted => "bold red",
        _ => null,
    };
}
