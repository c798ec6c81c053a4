using System.Globalization;
using Google.Protobuf;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Planning;
using SmpRobot.Treatment.Reports;

namespace SmpRobot.Controller.Sessions;

/// <summary>
/// Gathers what a session's or a treatment's PDF report shows from the store (the ledger, its audit logs, the
/// calibration and surface registrations used, the treatment's record) and writes it with
/// <see cref="ReportPdf"/>. Only what was recorded is shown: what was not measured is left for the report to call
/// "none" or "not measured". The client appears only by the treatment's pseudonymous id.
/// </summary>
public sealed class SessionReports
{
    /// <summary>Most audit entries a session report lists (the newest).</summary>
    public const int MaxAuditEntries = 2000;

    private readonly LedgerStore _ledger;
    private readonly TreatmentManager _treatments;
    private readonly TimeProvider _time;

    public SessionReports(LedgerStore ledger, TreatmentManager treatments, TimeProvider time)
    {
        _ledger = ledger ?? throw new ArgumentNullException(nameof(ledger));
        _treatments = treatments ?? throw new ArgumentNullException(nameof(treatments));
        _time = time ?? throw new ArgumentNullException(nameof(time));
    }

    /// <summary>The PDF report of session <paramref name="sessionId"/>. NotFound (<see cref="RefusedException"/>) for an unknown session.</summary>
    public byte[] SessionPdf(string sessionId)
    {
        var data = SessionData(sessionId);
        using var output = new MemoryStream();
        new ReportPdf(_time).WriteSession(data, output);
        return output.ToArray();
    }

    /// <summary>The PDF report of treatment <paramref name="treatmentId"/>. NotFound for an unknown treatment.</summary>
    public byte[] TreatmentPdf(string treatmentId)
    {
        var data = TreatmentData(treatmentId);
        using var output = new MemoryStream();
        new ReportPdf(_time).WriteTreatment(data, output);
        return output.ToArray();
    }

    /// <summary>What the session report of <paramref name="sessionId"/> shows.</summary>
    public SessionReportData SessionData(string sessionId)
    {
        if (string.IsNullOrWhiteSpace(sessionId)) throw new RefusedException(RefusalKind.InvalidArgument, "give a session id (smp sessions)");
        var record = _ledger.FindSession(sessionId) ?? throw new RefusedException(RefusalKind.NotFound, $"no session {sessionId} (smp sessions)");
        var plan = Plan.Parser.ParseJson(_ledger.LoadPlanJson(sessionId) ?? "{}");
        var zones = plan.Dots.ToDictionary(d => d.Id, d => string.IsNullOrEmpty(d.Zone) ? null : d.Zone, StringComparer.Ordinal);

        ReportDesign design;
        string treatmentId = "", client = "";
        int number = 0, count = 0;
        Dictionary<string, TreatmentDotRecord>? inScalp = null;
        Func<Vec3, Vec3> toS;
        if (record.TreatmentId is { } tid && _ledger.FindTreatment(tid) is { } treatment)
        {
            var resolved = _treatments.PlansOf(treatment).Dots.Design;
            design = ReportDesign.From(resolved, treatment.DesignName);
            treatmentId = treatment.Id;
            client = treatment.ClientId;
            number = record.TreatmentSessionNumber;
            count = treatment.SessionCount;
            inScalp = _ledger.LoadTreatmentDots(treatment.Id).Where(d => d.SessionId == sessionId).ToDictionary(d => d.DotId, StringComparer.Ordinal);
            var scalpFromHead = Rotations.Inverse(DesignPlans.NominalHeadFromScalp(resolved));
            toS = scalpFromHead.Apply;
        }
        else
        {
            // A session of a loose plan: its dots in the plan's frame, laid out around their own middle (a plan made
            // from a design carries the design's T_HS, which brings them into S).
            var scalpFromHead = plan.Source?.HeadFromScalp is { } t ? Rotations.Inverse(DesignPlans.FromMessage(t)) : RigidTransform.Identity;
            toS = scalpFromHead.Apply;
            var points = plan.Dots.Select(d => toS(new Vec3(d.XMm, d.YMm, d.ZMm))).ToList();
            var middle = points.Count == 0 ? Vec3.Zero : new Vec3(points.Average(p => p.X), points.Average(p => p.Y), points.Average(p => p.Z));
            var center = plan.Source?.HeadFromScalp is null ? middle - new Vec3(0, 0, 90) : Vec3.Zero;
            design = new ReportDesign(string.IsNullOrEmpty(plan.Source?.DesignName) ? record.PlanName : plan.Source.DesignName,
                new ReportMapFrame(center, new Vec3(0, 0, 1), new Vec3(0, 1, 0)), []);
        }

        var dots = _ledger.LoadDots(sessionId).Select(d =>
        {
            var planned = inScalp is not null && inScalp.TryGetValue(d.Dot.DotId, out var r) ? r.PlannedS : toS(new Vec3(d.Dot.XMm, d.Dot.YMm, d.Dot.ZMm));
            Vec3? offset = null;
            string? flag = null;
            if (inScalp is not null && inScalp.TryGetValue(d.Dot.DotId, out var rec))
            {
                if (rec.MeasuredS is { } m) offset = m - rec.PlannedS;
                flag = rec.Check switch
                {
                    DotCheckResult.OffTarget => Inv($"the camera saw it {rec.CheckOffsetMm ?? double.NaN:0.00} mm from its target"),
                    DotCheckResult.NotSeen => "the camera did not see it",
                    _ => null,
                };
            }
            if (d.State == DotLedgerState.InDoubt) flag ??= "in doubt: " + d.Note;
            return new ReportDot(d.Dot.DotId, planned, d.TargetMm, d.State switch
            {
                DotLedgerState.Placed => ReportDotState.Placed,
                DotLedgerState.Skipped => ReportDotState.Skipped,
                DotLedgerState.Pending => ReportDotState.Pending,
                _ => ReportDotState.InDoubt,
            }, offset, d.Dot.DepthMm, null, zones.GetValueOrDefault(d.Dot.DotId), flag);
        }).ToList();

        var calls = _ledger.ListCallAudit(null, sessionId, MaxAuditEntries);
        var operators = calls.Where(c => c.Result == "OK").Select(c => (c, Action: ActionOf(c.Rpc))).Where(x => x.Action is not null)
            .Select(x => new OperatorAction(x.c.Identity, x.c.Role, x.Action!, x.c.At)).ToList();
        var audit = calls.Select(c => new Treatment.Reports.AuditEntry(c.At, c.Identity, c.Role, c.Rpc, c.Result)).ToList();

        var timeline = new List<TimelineEvent>();
        var sessionAudit = _ledger.ReadAudit(sessionId, 10_000);
        foreach (var (at, kind, message) in sessionAudit)
        {
            TimelineEventKind? k = kind switch
            {
                "hold" => TimelineEventKind.Hold,
                "resumed" => TimelineEventKind.Resume,
                _ => null,
            };
            if (k is { } known) timeline.Add(new TimelineEvent(at, known, message));
        }
        foreach (var c in calls.Where(c => c.Result == "OK"))
        {
            if (c.Rpc.EndsWith("/Pause", StringComparison.Ordinal)) timeline.Add(new TimelineEvent(c.At, TimelineEventKind.Pause, "paused by the operator", c.Identity));
            if (c.Rpc.EndsWith("/Start", StringComparison.Ordinal)) timeline.Add(new TimelineEvent(c.At, TimelineEventKind.Resume, "started", c.Identity));
        }
        // E-stops are the machine's, not a session's: those that latched while this session ran, with their resets.
        foreach (var stop in EmergencyStops(record, sessionAudit))
        {
            timeline.Add(new TimelineEvent(stop.At, TimelineEventKind.EmergencyStop, stop.Incomplete is null ? stop.Message : stop.Message + "; " + stop.Incomplete));
            if (stop.Reset is { } reset) timeline.Add(new TimelineEvent(reset.At, TimelineEventKind.Reset, reset.Message));
        }

        CalibrationUsed? calibration = null;
        if (record.CalibrationId is { } cid && _ledger.FindCalibration(cid) is { } cal)
        {
            calibration = new CalibrationUsed(cal.Id, cal.CreatedAt, cal.RmsError, string.IsNullOrEmpty(cal.Notes) ? "not recorded" : cal.Notes);
        }
        var registrations = _ledger.ListSurfaceRegistrations(sessionId)
            .Select(r => new SurfaceRegistrationUsed(r.Patch, r.RmsMm, r.P95Mm, r.Contacts, r.Inliers, r.Valid,
                r.ModelSha256 == LedgerStore.HeightMapModel ? "height map" : "head model", r.WithdrawnBecause)).ToList();

        // The match the session was placed on: the last accepted one (refused attempts are in the audit extract).
        var used = record.TreatmentId is null ? null : _ledger.ListDotMatches(sessionId).LastOrDefault(m => m.Accepted);
        var match = used is null ? null : new DotMatchResult(used.Found, used.Matched, used.RmsMm, used.P95Mm, used.PicturePng);

        return new SessionReportData(treatmentId, client, design, number, count, sessionId, record.PlanName, record.ProfileName, record.CreatedAt, record.StartedAt, record.EndedAt,
            record.Phase.ToString(), record.Reason, operators, dots, timeline, calibration, registrations, match, audit);
    }

    /// <summary>What the treatment report of <paramref name="treatmentId"/> shows.</summary>
    public TreatmentReportData TreatmentData(string treatmentId)
    {
        var view = _treatments.Get(treatmentId);
        var treatment = view.Treatment;
        var resolved = _treatments.PlansOf(treatment).Dots.Design;
        var record = _ledger.LoadTreatmentDots(treatment.Id);
        var sessions = new List<SessionSummary>();
        var touchUps = new List<TouchUp>();
        foreach (var (link, snapshot) in view.Sessions)
        {
            var r = snapshot.Record;
            var estops = EmergencyStops(r, _ledger.ReadAudit(r.Id, 10_000)).Count;
            double? matchRms = _ledger.ListDotMatches(r.Id).LastOrDefault(m => m.Accepted) is { } accepted ? accepted.RmsMm : null;
            var summary = new SessionSummary(link.Number, r.Id, r.StartedAt ?? r.CreatedAt, snapshot.Tally.Placed, snapshot.Tally.Total, r.Holds.Holds, estops, matchRms, r.Phase.ToString());
            if (link.Kind == TreatmentSessionKind.TouchUp) touchUps.Add(new TouchUp(r.StartedAt ?? r.CreatedAt, r.Id, snapshot.Tally.Placed, "touch-up"));
            sessions.Add(summary);
        }
        var placed = record.Where(d => d.State == DotLedgerState.Placed).Select(d => new PlacedDot(d.MeasuredS ?? d.PlannedS, d.SessionNumber)).ToList();
        return new TreatmentReportData(treatment.Id, treatment.ClientId, ReportDesign.From(resolved, treatment.DesignName), treatment.SessionCount, sessions, placed, touchUps);
    }

    private static readonly string[] EStopKinds = ["estop", "estop-reset"];

    /// <summary>The session's own audit kinds that begin a run (its start, a resume).</summary>
    private static readonly HashSet<string> RunStartKinds = ["started", "resumed"];

    /// <summary>The session's own audit kinds that end a run: the end each run records, or the recovery after a crash.</summary>
    private static readonly HashSet<string> RunEndKinds = ["paused", "emergency_stopped", "faulted", "completed", "aborted", "recovered"];

    /// <summary>An e-stop that latched while the session ran: the first note that its stop sequence was incomplete, and the reset that followed it, if any.</summary>
    internal sealed record SessionEmergencyStop(DateTimeOffset At, string Message, string? Incomplete, (DateTimeOffset At, string Message)? Reset);

    /// <summary>
    /// The session's runs, from its own audit (oldest first): each from a start or resume to the end that run recorded
    /// (paused, e-stopped, faulted, completed, aborted, or recovered after a crash); one still open runs to
    /// <paramref name="now"/>. A "resumed" inside an open run (the motion hold's own) opens nothing.
    /// </summary>
    internal static IReadOnlyList<(DateTimeOffset From, DateTimeOffset Until)> Runs(IEnumerable<(DateTimeOffset At, string Kind, string Message)> sessionAudit, DateTimeOffset now)
    {
        var runs = new List<(DateTimeOffset, DateTimeOffset)>();
        DateTimeOffset? open = null;
        foreach (var (at, kind, _) in sessionAudit)
        {
            if (RunStartKinds.Contains(kind)) open ??= at;
            else if (open is { } from && RunEndKinds.Contains(kind))
            {
                runs.Add((from, at));
                open = null;
            }
        }
        if (open is { } last) runs.Add((last, now));
        return runs;
    }

    /// <summary>
    /// The e-stops that latched while the session ran (inside one of its <see cref="Runs"/>, on the chairs that ran it),
    /// each with the reset that followed it. Before, the window was the session's start to its end or now: a paused
    /// session counted every later e-stop of its chair, and an incomplete stop sequence's note counted as a second e-stop.
    /// </summary>
    internal IReadOnlyList<SessionEmergencyStop> EmergencyStops(SessionRecord record, IReadOnlyList<(DateTimeOffset At, string Kind, string Message)> sessionAudit)
    {
        var now = _time.GetUtcNow();
        var runs = Runs(sessionAudit, now);
        if (runs.Count == 0) return [];
        var stops = new List<SessionEmergencyStop>();
        // Each chair records an e-stop only when it latches, then its reset: E, R, E, R... A row belongs to the latest e-stop.
        var latestIsOurs = false;
        var until = runs[^1].Until > now ? runs[^1].Until : now;
        foreach (var (at, kind, message) in _ledger.ReadMachineAuditWhileRunBy(record.Id, runs[0].From, until, EStopKinds))
        {
            if (kind == "estop" && message.StartsWith(Safety.SafetySupervisor.IncompleteStopPrefix, StringComparison.Ordinal))
            {
                if (latestIsOurs && stops[^1].Incomplete is null) stops[^1] = stops[^1] with { Incomplete = message };
            }
            else if (kind == "estop")
            {
                latestIsOurs = runs.Any(r => at >= r.From && at <= r.Until);
                if (latestIsOurs) stops.Add(new SessionEmergencyStop(at, message, null, null));
            }
            else if (latestIsOurs && stops[^1].Reset is null)
            {
                stops[^1] = stops[^1] with { Reset = (at, message) };
            }
        }
        return stops;
    }

    private static string? ActionOf(string rpc)
    {
        var method = rpc[(rpc.LastIndexOf('/') + 1)..];
        return method switch
        {
            "CreateSession" => "created the session",
            "Start" => "started",
            "Resume" => "resumed",
            "Pause" => "paused",
            "Abort" => "aborted",
            "ResolveDots" => "resolved dots in doubt",
            "ProbeSurface" => "measured the scalp",
            "ContinueInNewSession" => "continued in a new session",
            _ => null,
        };
    }

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
