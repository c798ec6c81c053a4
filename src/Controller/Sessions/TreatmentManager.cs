using System.Globalization;
using System.Text.RegularExpressions;
using SmpRobot.Controller.Plans;
using SmpRobot.Controller.Storage;
using SmpRobot.Machine;
using SmpRobot.Treatment.Planning;

namespace SmpRobot.Controller.Sessions;

/// <summary>A treatment and its sessions as they stand now.</summary>
/// <param name="Treatment">The stored treatment.</param>
/// <param name="Sessions">Each session of it (touch-ups too), by number, with the session's state now.</param>
public sealed record TreatmentView(TreatmentRecord Treatment, IReadOnlyList<(TreatmentSessionRecord Link, SessionSnapshot Session)> Sessions)
{
    /// <summary>How many of the design's sessions (not touch-ups) exist.</summary>
    public int DesignSessionsCreated => Sessions.Count(s => s.Link.Kind == TreatmentSessionKind.Session);
}

/// <summary>
/// A treatment across weeks: starts one from a design for a pseudonymous client (its session 1 made from the design),
/// makes the next session from the same design, and reads the treatment's record. Sessions of a treatment are never
/// made from a loose plan file. Bad input is refused (<see cref="RefusedException"/>) before anything is stored.
/// Thread-safe: creating a session of a treatment is serialised per controller, and the store refuses a second
/// session of the same number (two chairs sharing a store).
/// </summary>
public sealed partial class TreatmentManager
{
    /// <summary>Longest client id, characters.</summary>
    public const int MaxClientIdLength = 64;

    private readonly LedgerStore _ledger;
    private readonly SessionManager _sessions;
    private readonly TreatmentPlanner _planner;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();

    public TreatmentManager(LedgerStore ledger, SessionManager sessions, TreatmentPlanner planner, TimeProvider time)
    {
        _ledger = ledger ?? throw new ArgumentNullException(nameof(ledger));
        _sessions = sessions ?? throw new ArgumentNullException(nameof(sessions));
        _planner = planner ?? throw new ArgumentNullException(nameof(planner));
        _time = time ?? throw new ArgumentNullException(nameof(time));
    }

    /// <summary>
    /// Starts a treatment of <paramref name="designJson"/> (whose head model is <paramref name="meshBytes"/>, the file
    /// <paramref name="meshFileName"/>) for <paramref name="clientId"/> and creates its session 1. Refuses (InvalidArgument)
    /// a malformed client id, a design that does not check, or a session 1 plan the machine cannot place; nothing is kept then.
    /// </summary>
    public TreatmentView Start(string clientId, string designJson, string meshFileName, byte[] meshBytes, string startedBy)
    {
        ArgumentNullException.ThrowIfNull(startedBy);
        CheckClientId(clientId);
        if (string.IsNullOrWhiteSpace(designJson)) throw new RefusedException(RefusalKind.InvalidArgument, "the design is empty: give the design file's text (smp treatment start DESIGN.json --client ID)");
        if (meshBytes is null || meshBytes.Length == 0) throw new RefusedException(RefusalKind.InvalidArgument, "the design's head model was not sent: smp sends the mesh the design names (head.mesh)");
        var check = _planner.Check(designJson, meshFileName ?? "", meshBytes);
        if (check.Design is null)
        {
            throw new RefusedException(RefusalKind.InvalidArgument, "the design does not check, nothing was stored: " +
                string.Join("; ", check.Violations.Take(8).Select(v => v.ToString())) + (check.Violations.Count > 8 ? $"; and {check.Violations.Count - 8} more" : ""));
        }
        var plans = _planner.Plans(designJson, meshFileName ?? "", meshBytes);
        var first = SessionPlanOf(plans, 1);
        lock (_gate)
        {
            // The head model is kept by its SHA-256 (kept again, it changes nothing); the treatment and its session 1 are
            // stored in one transaction, so a store that goes away part-way leaves neither (and a retry makes one treatment).
            _ledger.SaveHeadModel(check.Design.MeshSha256, Path.GetFileName(meshFileName ?? "head-model.ply"), meshBytes);
            var treatment = new NewTreatment(clientId, check.Design.Source.Name, designJson, check.Design.MeshSha256, check.Design.SessionCount, startedBy);
            var (session, _) = _sessions.Create(first.Check, meshBytes, Link("", plans, first, 1), treatment);
            return View(session?.Record.TreatmentId ?? throw new InvalidOperationException("the first session of the new treatment was not created: " + string.Join("; ", first.Check.Violations)));
        }
    }

    /// <summary>
    /// Creates the next of the design's sessions of treatment <paramref name="treatmentId"/>. Refuses (FailedPrecondition)
    /// while the last session is not over (not COMPLETED or ABORTED, or a dot in doubt), when every session of the design
    /// exists, or when fewer days passed since the last session than the design asks, unless <paramref name="earlyReason"/>
    /// says why (recorded in the audit log).
    /// </summary>
    public TreatmentView Next(string treatmentId, string? earlyReason, string by)
    {
        ArgumentNullException.ThrowIfNull(by);
        lock (_gate)
        {
            var treatment = Find(treatmentId);
            var view = View(treatment.Id);
            var k = view.DesignSessionsCreated + 1;
            string? early = null;
            if (k > treatment.SessionCount)
            {
                throw new RefusedException(RefusalKind.FailedPrecondition, Inv($"treatment {treatment.Id} already has all {treatment.SessionCount} sessions of its design; faded or missing dots are restored with a touch-up (smp treatment touch-up {treatment.Id})"));
            }
            if (view.Sessions.Count > 0)
            {
                var (lastLink, last) = view.Sessions[^1];
                var phase = last.Record.Phase;
                if (phase is not (SessionPhase.Completed or SessionPhase.Aborted))
                {
                    throw new RefusedException(RefusalKind.FailedPrecondition, Inv($"session {lastLink.Number} ({last.Record.Id}) of treatment {treatment.Id} is {phase}: finish or abort it first (smp session show {last.Record.Id})"));
                }
                if (last.Tally.InDoubt > 0)
                {
                    throw new RefusedException(RefusalKind.FailedPrecondition, Inv($"session {lastLink.Number} ({last.Record.Id}) has {last.Tally.InDoubt} dot(s) in doubt: resolve them first (smp session resolve {last.Record.Id} …), the next session's spacing depends on them"));
                }
                var days = DaysBefore(treatment, k);
                var endedAt = last.Record.EndedAt ?? last.Record.CreatedAt;
                var waited = _time.GetUtcNow() - endedAt;
                if (days > 0 && waited < TimeSpan.FromDays(days))
                {
                    if (string.IsNullOrWhiteSpace(earlyReason))
                    {
                        throw new RefusedException(RefusalKind.FailedPrecondition, Inv($"the design asks for {days} days between session {k - 1} and session {k} (the skin heals in between); {waited.TotalDays:0.#} day(s) have passed since {last.Record.Id} ended. Give --early REASON to go on anyway (recorded)"));
                    }
                    early = Inv($"session {k} of treatment {treatment.Id} made {waited.TotalDays:0.#} day(s) after session {k - 1} (the design asks {days}) by {by}: {earlyReason}");
                }
            }
            var plans = PlansOf(treatment);
            CreateSession(treatment, plans, SessionPlanOf(plans, k), k);
            if (early is not null) _ledger.Audit(null, "treatment-early", early);
            return View(treatment.Id);
        }
    }

    /// <summary>
    /// Creates a touch-up of treatment <paramref name="treatmentId"/> (after all of its design's sessions, months or years
    /// later): one dot for each dot on record, placed where it is. Nothing of it is placed blind: at each head position
    /// the camera first finds the recorded dots still there (smp treatment match, which <c>smp run</c> does), and only
    /// those it saw faded or missing stay to be placed, so the design's density is restored there only. Refuses
    /// (FailedPrecondition) before the design's sessions are all made, while the last session is not over or has dots
    /// in doubt, and when no dot was ever placed.
    /// </summary>
    public TreatmentView TouchUp(string treatmentId, string by)
    {
        ArgumentNullException.ThrowIfNull(by);
        lock (_gate)
        {
            var treatment = Find(treatmentId);
            var view = View(treatment.Id);
            if (view.DesignSessionsCreated < treatment.SessionCount)
            {
                throw new RefusedException(RefusalKind.FailedPrecondition, Inv($"treatment {treatment.Id} has {view.DesignSessionsCreated} of its design's {treatment.SessionCount} sessions: a touch-up comes after them (smp treatment next {treatment.Id})"));
            }
            var (lastLink, last) = view.Sessions[^1];
            if (last.Record.Phase is not (SessionPhase.Completed or SessionPhase.Aborted))
            {
                throw new RefusedException(RefusalKind.FailedPrecondition, Inv($"session {lastLink.Number} ({last.Record.Id}) of treatment {treatment.Id} is {last.Record.Phase}: finish or abort it first (smp session show {last.Record.Id})"));
            }
            if (last.Tally.InDoubt > 0)
            {
                throw new RefusedException(RefusalKind.FailedPrecondition, Inv($"session {lastLink.Number} ({last.Record.Id}) has {last.Tally.InDoubt} dot(s) in doubt: resolve them first (smp session resolve {last.Record.Id} …), the touch-up restores what the record says is placed"));
            }
            // Each design dot once, where its latest placement is (a touch-up's restored dot supersedes the one it restored).
            var onRecord = _ledger.LoadTreatmentDots(treatment.Id).Where(d => d.State == DotLedgerState.Placed)
                .GroupBy(d => d.DesignDotId, StringComparer.Ordinal).Select(g => g.Last()).Select(d => (d.DesignDotId, d.MeasuredS ?? d.PlannedS)).ToList();
            if (onRecord.Count == 0)
            {
                throw new RefusedException(RefusalKind.FailedPrecondition, Inv($"treatment {treatment.Id} has no dot placed: there is nothing to touch up"));
            }
            var number = view.Sessions.Max(s => s.Link.Number) + 1;
            var plans = PlansOf(treatment);
            var plan = _planner.TouchUpPlan(plans, onRecord, number);
            if (!plan.Check.IsValid)
            {
                throw new RefusedException(RefusalKind.InvalidArgument, Inv($"touch-up {number} cannot be placed on this machine: ") +
                    string.Join("; ", plan.Check.Violations.Take(5).Select(v => v.ToString())));
            }
            if (plan.Plan.Dots.Count == 0) throw new RefusedException(RefusalKind.FailedPrecondition, "no dot on record can be reached by the machine: there is nothing to touch up");
            var inScalp = new Dictionary<string, DotInScalp>(StringComparer.Ordinal);
            var pointOf = onRecord.ToDictionary(r => r.DesignDotId, r => r.Item2, StringComparer.Ordinal);
            foreach (var dot in plan.Plan.Dots)
            {
                var designDotId = dot.Id[(dot.Id.IndexOf('-', StringComparison.Ordinal) + 1)..];
                inScalp[dot.Id] = new DotInScalp(designDotId, pointOf[designDotId]);
            }
            Create(treatment, plan, new TreatmentSessionLink(treatment.Id, number, TreatmentSessionKind.TouchUp, inScalp));
            _ledger.Audit(null, "treatment-touch-up", Inv($"touch-up {number} of treatment {treatment.Id} made by {by}: {plan.Plan.Dots.Count} recorded dot(s) to survey"));
            return View(treatment.Id);
        }
    }

    /// <summary>The treatment and its sessions now. Throws <see cref="RefusedException"/> (NotFound) for an unknown id.</summary>
    public TreatmentView Get(string treatmentId) => View(Find(treatmentId).Id);

    /// <summary>Treatments, newest first (only the client's when <paramref name="clientId"/> is given).</summary>
    public IReadOnlyList<TreatmentRecord> List(string? clientId)
    {
        if (!string.IsNullOrEmpty(clientId)) CheckClientId(clientId);
        return _ledger.ListTreatments(string.IsNullOrEmpty(clientId) ? null : clientId);
    }

    /// <summary>Every dot of the treatment's record (all sessions, all states). NotFound for an unknown treatment.</summary>
    public IReadOnlyList<TreatmentDotRecord> Dots(string treatmentId) => _ledger.LoadTreatmentDots(Find(treatmentId).Id);

    /// <summary>The design's dots and plans of a stored treatment (sampled once, then reused).</summary>
    public TreatmentDesignPlans PlansOf(TreatmentRecord treatment)
    {
        ArgumentNullException.ThrowIfNull(treatment);
        var model = _ledger.LoadHeadModel(treatment.HeadModelSha256)
            ?? throw new InvalidDataException($"the head model {treatment.HeadModelSha256} of treatment {treatment.Id} is missing from the store");
        return _planner.Plans(treatment.DesignJson, model.FileName, model.Bytes);
    }

    /// <summary>Refuses (InvalidArgument) anything but a short pseudonymous id: letters, digits, '.', '_' and '-'.</summary>
    public static void CheckClientId(string? clientId)
    {
        if (string.IsNullOrEmpty(clientId) || clientId.Length > MaxClientIdLength || !ClientIdPattern().IsMatch(clientId))
        {
            throw new RefusedException(RefusalKind.InvalidArgument,
                Inv($"the client id must be a pseudonymous id of 1-{MaxClientIdLength} letters, digits, '.', '_' or '-' (e.g. C-0042), never a person's name; nothing was stored"));
        }
    }

    private TreatmentRecord Find(string treatmentId)
    {
        if (string.IsNullOrWhiteSpace(treatmentId)) throw new RefusedException(RefusalKind.InvalidArgument, "give a treatment id (smp treatment list)");
        return _ledger.FindTreatment(treatmentId) ?? throw new RefusedException(RefusalKind.NotFound, $"no treatment {treatmentId} (smp treatment list)");
    }

    private TreatmentView View(string treatmentId)
    {
        var treatment = _ledger.FindTreatment(treatmentId) ?? throw new RefusedException(RefusalKind.NotFound, $"no treatment {treatmentId}");
        var sessions = _ledger.ListTreatmentSessions(treatmentId).Select(l => (l, _sessions.Get(l.SessionId))).ToList();
        return new TreatmentView(treatment, sessions);
    }

    private static SessionPlan SessionPlanOf(TreatmentDesignPlans plans, int k)
    {
        var plan = plans.Plans.Sessions.Single(s => s.Session == k);
        if (!plan.Check.IsValid)
        {
            throw new RefusedException(RefusalKind.InvalidArgument, Inv($"session {k} of the design cannot be placed on this machine: ") +
                string.Join("; ", plan.Check.Violations.Take(5).Select(v => v.ToString())));
        }
        if (plan.Plan.Dots.Count == 0)
        {
            throw new RefusedException(RefusalKind.InvalidArgument, Inv($"session {k} of the design has no dot the machine can reach"));
        }
        return plan;
    }

    private void CreateSession(TreatmentRecord treatment, TreatmentDesignPlans plans, SessionPlan plan, int number) =>
        Create(treatment, plan, Link(treatment.Id, plans, plan, number));

    /// <summary>Session <paramref name="number"/> of the design in treatment <paramref name="treatmentId"/>: every dot with its design dot and point in S.</summary>
    private static TreatmentSessionLink Link(string treatmentId, TreatmentDesignPlans plans, SessionPlan plan, int number)
    {
        var inScalp = new Dictionary<string, DotInScalp>(StringComparer.Ordinal);
        foreach (var dot in plan.Plan.Dots)
        {
            var designDot = plans.ById[dot.Id];
            inScalp[dot.Id] = new DotInScalp(designDot.Id, designDot.PointMm);
        }
        return new TreatmentSessionLink(treatmentId, number, TreatmentSessionKind.Session, inScalp);
    }

    private void Create(TreatmentRecord treatment, SessionPlan plan, TreatmentSessionLink link)
    {
        var model = _ledger.LoadHeadModel(treatment.HeadModelSha256)!.Value.Bytes;
        try
        {
            _sessions.Create(plan.Check, model, link);
        }
        catch (InvalidOperationException e) when (e.Message.Contains("already has session", StringComparison.Ordinal))
        {
            throw new RefusedException(RefusalKind.FailedPrecondition, e.Message + ": another chair made it first (smp treatment show " + treatment.Id + ")");
        }
    }

    private static int DaysBefore(TreatmentRecord treatment, int k)
    {
        var design = Treatment.Design.DesignLoader.Parse(treatment.DesignJson, ".").Design;
        var days = design?.Sessions?.DaysAfterPrevious;
        return days is not null && k - 2 < days.Count && k >= 2 ? (int)days[k - 2] : 0;
    }

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex ClientIdPattern();
}
