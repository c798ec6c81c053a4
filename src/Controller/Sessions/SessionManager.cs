using Google.Protobuf;
using Microsoft.Extensions.Logging;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Calibration;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Plans;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Machine;
using SmpRobot.Vision;

namespace SmpRobot.Controller.Sessions;

/// <summary>Head tracking and the automatic motion hold, as a session sees them at one moment.</summary>
/// <param name="Source">The pose source's description.</param>
/// <param name="IsTracking">False for a fixed head (no camera).</param>
/// <param name="Gates">The gates on the freshest pose now.</param>
/// <param name="Holding">The running session is in an automatic hold.</param>
/// <param name="HoldReason">Why, while holding; empty otherwise.</param>
/// <param name="HoldSeconds">How long the current hold has lasted (tracking clock), s.</param>
/// <param name="Holds">Automatic holds in this run.</param>
/// <param name="LastHoldReason">Reason of the last hold of this run.</param>
/// <param name="Retracts">Needles retracted mid-dot by a motion hold in this run.</param>
public sealed record TrackingView(string Source, bool IsTracking, GateReading Gates, bool Holding, string HoldReason, double HoldSeconds, int Holds, string LastHoldReason, int Retracts,
    double PoseMaxAgeMs, double MinQuality, double MaxHeadSpeedMmPerS);

/// <summary>A session as the operator sees it at one moment.</summary>
/// <param name="Checks">The camera's check of a treatment session's dots, as recorded; null for a session outside a treatment.</param>
public sealed record SessionSnapshot(SessionRecord Record, DotTally Tally, IReadOnlyList<LedgerDot> InDoubt, double ElapsedSeconds, double KinematicSeconds, TrackingView? Tracking = null, DotCheckTally? Checks = null)
{
    /// <summary>Placed dots per machine-time second.</summary>
    public double DotsPerSecond => ElapsedSeconds > 0 ? Tally.Placed / ElapsedSeconds : 0;

    /// <summary>Remaining machine time at the current rate; 0 when unknown.</summary>
    public double EtaSeconds => DotsPerSecond > 0 ? Tally.Pending / DotsPerSecond : 0;

    public bool IsFinal => Record.Phase is SessionPhase.Completed or SessionPhase.Aborted;
}

/// <summary>
/// The session lifecycle: create, start, resume, pause, abort, continue, resolve (each checked against
/// <see cref="SessionPhases"/>), the start readiness, snapshots and watches. One session runs at a time
/// (it holds the machine's lease); its run is a <see cref="SessionRun"/> driven by the
/// <see cref="SessionRunner"/> through the <see cref="DotCycle"/>. Every dot's state lives in the
/// durable ledger; the in-memory state here is only the running session's run.
/// </summary>
public sealed partial class SessionManager : IAsyncDisposable
{
    private const int MaxInDoubtListed = 100;
    private readonly LedgerStore _ledger;
    private readonly GantryConnection _gantry;
    private readonly SafetySupervisor _safety;
    private readonly OperatorPresence _presence;
    private readonly MachineProfile _profile;
    private readonly PlanValidator _validator;
    private readonly DotProgram _program;
    private readonly Aiming _aiming;
    private readonly MachineReadiness _readiness;
    private readonly SessionRunner _runner;
    private readonly PoseUpdates _poses;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly CalibrationGate? _calibration;
    private readonly IHeadPoseSource _headPose;
    private readonly Lock _gate = new();
    private SessionRun? _active;
    private IDisposable? _activeLease;
    private volatile bool _shuttingDown;
    private readonly SessionSnapshots _snapshots;
    private readonly ITimer _watchdog;
    private readonly ISafetySwitch? _patientSwitch;

    /// <summary>
    /// How often the watchdog looks at the running session's operator and tracking without waiting
    /// for an event: a console that goes silent, or a camera that stops sending frames, only shows
    /// as something that keeps aging.
    /// </summary>
    public static readonly TimeSpan WatchdogPeriod = TimeSpan.FromMilliseconds(25);

    public SessionManager(LedgerStore ledger, GantryConnection gantry, SafetySupervisor safety, MachineReadiness readiness, MotionLink motion, OperatorPresence presence, IHeadPoseSource headPose, MachineProfile profile, TimeProvider timeProvider, ILogger<SessionManager> log, CalibrationGate? calibration = null, SafetySwitches? switches = null, Surface.SurfaceProbing? surfaceProbing = null, DotChecks? dotChecks = null)
    {
        ArgumentNullException.ThrowIfNull(presence);
        ArgumentNullException.ThrowIfNull(headPose);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _readiness = readiness;
        _patientSwitch = switches?.PatientSwitch;
        _calibration = calibration;
        _ledger = ledger;
        _gantry = gantry;
        _safety = safety;
        _presence = presence;
        _profile = profile;
        _validator = new PlanValidator(profile);
        _program = new DotProgram(profile);
        _aiming = new Aiming(profile, headPose);
        _headPose = headPose;
        _poses = new PoseUpdates(timeProvider);
        _runner = new SessionRunner(ledger, gantry, safety, motion, presence, profile, _program, _aiming, _poses, timeProvider, log, Changed, surfaceProbing, dotChecks);
        headPose.PoseUpdated += OnPoseUpdated;
        // The guard also looks without frames: a camera that stops delivering them only shows as a pose that keeps aging.
        _watchdog = timeProvider.CreateTimer(_ => Watchdog(), null, WatchdogPeriod, WatchdogPeriod);
        // A console that hangs up, or a released foot pedal, holds the run at once (not at the next look).
        presence.Lost += (_, _) => CheckOperator();
        if (_patientSwitch is not null) _patientSwitch.Disengaged += (_, _) => CheckOperator();
        _time = timeProvider;
        _log = log;
        _snapshots = new SessionSnapshots(Snapshot, timeProvider, log);
        _safety.EmergencyStopLatched += (_, e) => StopActiveRun(RunCommandKind.EmergencyStop, $"emergency stop from {e.State.Source}" + (e.State.Reason.Length > 0 ? ": " + e.State.Reason : ""));
        _gantry.Faulted += (_, e) =>
        {
            // A re-check probe that touched nothing (ALARM:5) or read touching at once (ALARM:4) refuses and the run holds with that reason.
            if (e.Fault.Kind == GantryFaultKind.Alarm && e.Fault.Code is 4 or 5 && Volatile.Read(ref _active) is { ProbeUnderWay: true }) return;
            StopActiveRun(RunCommandKind.Fault, "gantry fault: " + e.Fault.Message);
        };
    }

    public MachineProfile Profile => _profile;

    private int _recovered;

    /// <summary>
    /// Restart recovery, once, at start-up before the server listens (ControllerLifetime.StartingAsync): every
    /// session the ledger still calls RUNNING or PAUSING was cut off by the last controller's end, so it becomes
    /// FAULTED and its commanded dot (if any) in doubt. Not in the constructor: building the object graph writes
    /// nothing. Later calls do nothing. Returns the sessions recovered.
    /// </summary>
    public IReadOnlyList<string> RecoverAfterRestart()
    {
        if (Interlocked.Exchange(ref _recovered, 1) == 1) return [];
        lock (_gate)
        {
            if (_active is not null) throw new InvalidOperationException($"restart recovery must run before any session: session {_active.SessionId} is running");
        }
        var recovered = _ledger.RecoverAfterRestart("the controller stopped while this session was running");
        foreach (var id in recovered)
        {
            Log.Recovered(_log, id);
        }
        if (recovered.Count > 0) Changed();
        return recovered;
    }

    /// <summary>Parses and validates a plan file's text against the profile.</summary>
    public PlanValidationResult ValidatePlanJson(string planJson) => _validator.ValidateJson(planJson);

    /// <summary>Validates a plan given as a message (its size is checked as canonical JSON).</summary>
    public PlanValidationResult ValidatePlan(Plan plan) => _validator.ValidateJson(JsonFormatter.Default.Format(plan));

    /// <summary>Pure motion + dwell time of a valid plan on this profile, from the fixed head pose (turned for each head position), seconds; the time to turn the head between positions is not in it.</summary>
    public double EstimateKinematicSeconds(Plan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var head = _profile.FixedHead.ToTransform();
        var patches = PlanPatches.Of(plan);
        var grid = new StepGrid(_profile.StepsPerMm);
        var current = _profile.HomePosition;
        double seconds = 0;
        foreach (var index in PathOrdering.Order(plan))
        {
            var d = plan.Dots[index];
            var skin = (head * patches.HeadPose((int)d.Patch)).Apply(new Vec3(d.XMm, d.YMm, d.ZMm));
            var hover = grid.Quantise(skin with { Z = skin.Z + _profile.HoverHeightMm });
            var depth = grid.Quantise(skin with { Z = skin.Z - d.DepthMm });
            seconds += _program.Travel(current, hover).Sum(l => l.KinematicSeconds) + _program.Place(hover, depth, d.DwellMs).Sum(l => l.KinematicSeconds);
            current = hover;
        }
        return seconds;
    }

    /// <summary>Validates and stores a new session (CREATED). Throws <see cref="RefusedException"/> (InvalidArgument) with the violations.</summary>
    public (SessionSnapshot? Session, PlanValidationResult Validation) Create(PlanValidationResult validation, byte[]? headModel = null) =>
        Create(validation, headModel, null);

    /// <summary>
    /// As <see cref="Create(PlanValidationResult, byte[])"/>, for a session of a treatment: <paramref name="link"/> gives its
    /// number in the treatment and every dot's point in S, stored with the session in one transaction.
    /// </summary>
    /// <param name="creating">A new treatment that this session is the first of: stored with it in one transaction (<paramref name="link"/>'s treatment id is then ignored).</param>
    public (SessionSnapshot? Session, PlanValidationResult Validation) Create(PlanValidationResult validation, byte[]? headModel, TreatmentSessionLink? link, NewTreatment? creating = null)
    {
        ArgumentNullException.ThrowIfNull(validation);
        if (!validation.IsValid || validation.Plan is null) return (null, validation);
        var plan = validation.Plan;
        if (headModel is { Length: > 0 }) KeepHeadModel(plan, headModel);
        var order = PathOrdering.Order(plan);
        var dots = new List<PlannedDot>(order.Length);
        for (var seq = 0; seq < order.Length; seq++)
        {
            var d = plan.Dots[order[seq]];
            dots.Add(new PlannedDot(seq, d.Id, d.XMm, d.YMm, d.ZMm, d.DepthMm, d.DwellMs, d.PigmentId, (int)d.Patch));
        }
        var name = string.IsNullOrEmpty(plan.Name) ? "unnamed plan" : plan.Name;
        var record = link is null ? _ledger.CreateSession(name, JsonFormatter.Default.Format(plan), _profile.Name, dots)
            : creating is null ? _ledger.CreateTreatmentSession(name, JsonFormatter.Default.Format(plan), _profile.Name, dots, link)
            : _ledger.CreateTreatmentWithFirstSession(creating, name, JsonFormatter.Default.Format(plan), _profile.Name, dots, link);
        // Its "session-created" audit row was written in the creation's own transaction: no second write here, which a
        // store going away could fail after the session stood (and a retry would then make a second one).
        Changed();
        return (Snapshot(record.Id), validation);
    }

    /// <summary>
    /// Checks that <paramref name="bytes"/> are the head model the plan names (its SHA-256, a mesh of that format) and
    /// keeps them for the session's surface registration; refuses (InvalidArgument) and keeps nothing otherwise.
    /// </summary>
    private void KeepHeadModel(Plan plan, byte[] bytes)
    {
        var source = plan.Source;
        if (source is null || source.HeadModelSha256.Length == 0)
        {
            throw new RefusedException(RefusalKind.InvalidArgument, "a head model was sent, but the plan names none (source.headModelFile and headModelSha256): nothing was created");
        }
        var sha = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes));
        if (sha != source.HeadModelSha256)
        {
            throw new RefusedException(RefusalKind.InvalidArgument, $"the head model sent is not the plan's: its SHA-256 is {sha}, the plan names {source.HeadModelSha256} ({source.HeadModelFile}); nothing was created");
        }
        try
        {
            Treatment.Mesh.MeshReader.Read(bytes, source.HeadModelFile);
        }
        catch (Treatment.Mesh.MeshFormatException e)
        {
            throw new RefusedException(RefusalKind.InvalidArgument, $"the head model {source.HeadModelFile} cannot be read: {e.Message}; nothing was created");
        }
        _ledger.SaveHeadModel(sha, Path.GetFileName(source.HeadModelFile), bytes);
    }

    /// <summary>The session now (the latest shared snapshot when nothing changed since it was built).</summary>
    public SessionSnapshot Get(string sessionId) => _snapshots.Get(sessionId);

    public IReadOnlyList<SessionSnapshot> List() => _ledger.ListSessions().Select(r => Snapshot(r.Id)).ToList();

    /// <summary>The running session's id, or else the most recent session's; null when there is none.</summary>
    public string? CurrentSessionId
    {
        get
        {
            lock (_gate)
            {
                if (_active is not null) return _active.SessionId;
            }
            return _ledger.ListSessions(1) is [var newest, ..] ? newest.Id : null;
        }
    }

    /// <summary>
    /// Why the operator is needed now, for a lamp or buzzer: the e-stop latched, or the current
    /// session faulted, e-stopped, held (automatically, by the dead-man, or by the patient); null when
    /// nothing needs them (running normally, paused on purpose, completed, nothing at all).
    /// </summary>
    public string? AttentionReason
    {
        get
        {
            if (_safety.IsLatched) return "the emergency stop is latched";
            if (CurrentSessionId is not { } id) return null;
            var s = Get(id);
            return s.Record.Phase switch
            {
                SessionPhase.Faulted => "session " + id + " faulted: " + s.Record.Reason,
                SessionPhase.EmergencyStopped => "session " + id + " was emergency-stopped",
                SessionPhase.Paused or SessionPhase.Pausing when s.Record.Reason.StartsWith("held", StringComparison.Ordinal) || s.Record.Reason.StartsWith("paused by the patient", StringComparison.Ordinal)
                    => "session " + id + ": " + s.Record.Reason,
                SessionPhase.Running when s.Tracking is { Holding: true } t => "session " + id + " holds: " + t.HoldReason,
                _ => null,
            };
        }
    }

    /// <summary>The running session's id, or null when none runs.</summary>
    public string? RunningSessionId
    {
        get
        {
            lock (_gate) return _active?.SessionId;
        }
    }

    /// <summary>CREATED → RUNNING; <paramref name="calibrationOverride"/> lets a tracked session start without a valid calibration (recorded).</summary>
    public SessionSnapshot Start(string sessionId, CalibrationOverrideRequest? calibrationOverride = null, string? consoleId = null, string? surfaceOverride = null)
    {
        var record = Find(sessionId);
        SessionPhases.Require(SessionStep.Start, sessionId, record.Phase);
        return Launch(record, "started", calibrationOverride, consoleId, surfaceOverride);
    }

    /// <summary>
    /// CREATED → RUNNING; with <paramref name="checkFirst"/>, the whole program (aimed with the pose
    /// available now) is first streamed in the firmware's check mode, and any refusal or soft limit
    /// refuses the start (FailedPrecondition listing each, with its dot).
    /// </summary>
    public async Task<SessionSnapshot> StartAsync(string sessionId, bool checkFirst, CancellationToken cancellationToken, CalibrationOverrideRequest? calibrationOverride = null, string? consoleId = null, string? surfaceOverride = null)
    {
        if (!checkFirst) return Start(sessionId, calibrationOverride, consoleId, surfaceOverride);
        var record = Find(sessionId);
        SessionPhases.Require(SessionStep.Start, sessionId, record.Phase);
        // Refused here with the readiness text; CheckMode.RunAsync then takes the lease for the check itself.
        if (_readiness.Refusals(needsHoming: true, needsMatchingSettings: true) is [var refusal, ..])
        {
            throw new RefusedException(RefusalKind.FailedPrecondition, "cannot check the program: " + refusal);
        }
        var status = await _gantry.RequireClient().QueryStatusAsync(cancellationToken);
        var patches = PlanPatches.OfJson(_ledger.LoadPlanJson(sessionId));
        // The check aims as the run will: with the plan's skin normals (the plunge compensates the needle's tilt). On the
        // plan's own skin heights: the measured skin of each head position (within a probe's reach of them) is set by
        // the runner as it enters it, never left over from an earlier run.
        _aiming.Normals = patches.Normal;
        _aiming.SurfaceCorrection = RigidTransform.Identity;
        _aiming.HeightMap = null;
        var pending = _ledger.LoadDots(sessionId).Where(d => d.State == DotLedgerState.Pending).Select(d => d.Dot with { Patch = patches.Of(d.Dot.DotId) });
        // A still head is checked in each of the plan's head positions; a tracked one where it is now.
        var stillHead = _profile.FixedHead.ToTransform();
        var program = CheckMode.SessionProgram(_program, _aiming, pending, status.MachinePosition,
            _headPose is FixedHeadPoseSource && patches.Count > 0 ? d => stillHead * patches.HeadPose(d.Patch) : null);
        if (program.NotAimed.Count > 0)
        {
            throw new RefusedException(RefusalKind.FailedPrecondition, $"{program.NotAimed.Count} dot(s) cannot be aimed: " + string.Join("; ", program.NotAimed.Take(10)));
        }
        CheckReport report;
        try
        {
            report = await CheckMode.RunAsync(_gantry, program.Lines, new CheckModeOptions { Send = _safety.SendMotionLineAsync }, cancellationToken);
        }
        catch (Exception e) when (e is InvalidOperationException or GantryFaultException or TimeoutException)
        {
            throw new RefusedException(RefusalKind.FailedPrecondition, "check mode could not run: " + e.Message);
        }
        var text = report.Describe(program.DotIds);
        _ledger.Audit(sessionId, "checked", text);
        if (!report.Passed) throw new RefusedException(RefusalKind.FailedPrecondition, text);
        return Launch(Find(sessionId), "started", calibrationOverride, consoleId, surfaceOverride);
    }

    /// <summary>PAUSED / FAULTED / EMERGENCY_STOPPED → RUNNING, once nothing is in doubt.</summary>
    public SessionSnapshot Resume(string sessionId, CalibrationOverrideRequest? calibrationOverride = null, string? consoleId = null, string? surfaceOverride = null)
    {
        var record = Find(sessionId);
        SessionPhases.Require(SessionStep.Resume, sessionId, record.Phase);
        if (_safety.IsLatched) throw new RefusedException(RefusalKind.FailedPrecondition, MachineReadiness.LatchedRefusal);
        var tally = _ledger.Tally(sessionId);
        if (tally.InDoubt > 0)
        {
            throw new RefusedException(RefusalKind.FailedPrecondition,
                $"{tally.InDoubt} dot(s) of session {sessionId} are in doubt; look at the skin and resolve them first: smp session resolve {sessionId} --all-in-doubt --as placed|redo|skip");
        }
        return Launch(record, "resumed", calibrationOverride, consoleId, surfaceOverride);
    }

    /// <summary>RUNNING → PAUSING → PAUSED: the dot in progress finishes, then the needle holds at hover.</summary>
    public SessionSnapshot Pause(string sessionId)
    {
        var record = Find(sessionId);
        lock (_gate)
        {
            if (_active?.SessionId == sessionId && _active.Commands.Posted is null)
            {
                _active.Commands.Post(RunCommandKind.Pause, "paused by the operator");
                _ledger.UpdateSession(sessionId, SessionPhase.Pausing, "pausing: finishing the current dot", _active.ElapsedSeconds(_time, _gantry.TimeScale), _active.KinematicSeconds, record.StartedAt, null);
            }
            else if (_active?.SessionId != sessionId && record.Phase is not (SessionPhase.Pausing or SessionPhase.Paused))
            {
                // Pausing a run that already stops (paused, aborting, held) or a paused session is no error.
                SessionPhases.Require(SessionStep.Pause, sessionId, record.Phase);
            }
        }
        Changed();
        return Snapshot(sessionId);
    }

    /// <summary>Ends a session for good (ABORTED); a running one finishes its current dot first.</summary>
    public SessionSnapshot Abort(string sessionId)
    {
        var record = Find(sessionId);
        lock (_gate)
        {
            if (_active?.SessionId == sessionId)
            {
                _active.Commands.Post(RunCommandKind.Abort, "aborted by the operator");
            }
            else
            {
                SessionPhases.Require(SessionStep.Abort, sessionId, record.Phase);
                _ledger.UpdateSession(sessionId, SessionPhase.Aborted, "aborted by the operator", record.ElapsedSeconds, record.KinematicSeconds, record.StartedAt, _time.GetUtcNow());
                _ledger.Audit(sessionId, "aborted", "aborted by the operator");
            }
        }
        Changed();
        return Snapshot(sessionId);
    }

    /// <summary>
    /// Moves the dots a stopped session has not placed to a new session of the same plan (CREATED):
    /// the old one ends ABORTED, saying where its dots went; each session's ledger keeps the dots it
    /// placed. For a session interrupted today and continued another day, or after a fault whose
    /// firmware or calibration state makes a fresh start cleaner. Refused while it runs, while dots are
    /// in doubt (resolve them first), and when nothing is left to place.
    /// </summary>
    public (SessionSnapshot Old, SessionSnapshot New) ContinueInNewSession(string sessionId)
    {
        var record = Find(sessionId);
        lock (_gate)
        {
            if (_active?.SessionId == sessionId) throw new RefusedException(RefusalKind.FailedPrecondition, $"session {sessionId} is running; pause it first");
        }
        SessionPhases.Require(SessionStep.Continue, sessionId, record.Phase);
        var tally = _ledger.Tally(sessionId);
        if (tally.InDoubt > 0)
        {
            throw new RefusedException(RefusalKind.FailedPrecondition,
                $"{tally.InDoubt} dot(s) of session {sessionId} are in doubt; look at the skin and resolve them first: smp session resolve {sessionId} --all-in-doubt --as placed|redo|skip");
        }
        if (tally.Pending == 0) throw new RefusedException(RefusalKind.FailedPrecondition, $"session {sessionId} has no dot left to place");
        var plan = Plan.Parser.ParseJson(_ledger.LoadPlanJson(sessionId) ?? throw new RefusedException(RefusalKind.NotFound, $"no plan stored for session {sessionId}"));
        var pending = _ledger.LoadDotsInState(sessionId, DotLedgerState.Pending).Select(d => d.Dot.DotId).ToHashSet(StringComparer.Ordinal);
        var remaining = plan.Clone();
        remaining.Dots.Clear();
        remaining.Dots.Add(plan.Dots.Where(d => pending.Contains(d.Id)));
        var (created, validation) = Create(ValidatePlan(remaining));
        if (created is null) throw new RefusedException(RefusalKind.FailedPrecondition, $"the remaining dots of session {sessionId} no longer pass this profile's checks: " + string.Join("; ", validation.Violations.Take(5).Select(v => v.Message)));
        var newId = created.Record.Id;
        _ledger.Audit(newId, "continued", $"continues session {sessionId}: its {remaining.Dots.Count} remaining dot(s) of plan '{plan.Name}'");
        var reason = $"its {remaining.Dots.Count} remaining dot(s) continue in session {newId}";
        _ledger.UpdateSession(sessionId, SessionPhase.Aborted, reason, record.ElapsedSeconds, record.KinematicSeconds, record.StartedAt, record.EndedAt ?? _time.GetUtcNow());
        _ledger.Audit(sessionId, "continued-elsewhere", reason);
        Changed();
        return (Snapshot(sessionId), Snapshot(newId));
    }

    /// <summary>The operator's decision for dots in doubt.</summary>
    public SessionSnapshot Resolve(string sessionId, IReadOnlyCollection<string> dotIds, bool allInDoubt, DotLedgerState to, string operatorName)
    {
        var record = Find(sessionId);
        lock (_gate)
        {
            if (_active?.SessionId == sessionId)
            {
                throw new RefusedException(RefusalKind.FailedPrecondition, $"session {sessionId} is running; pause it before resolving dots");
            }
        }
        if (SessionPhases.IsFinal(record.Phase) && to == DotLedgerState.Pending)
        {
            throw new RefusedException(RefusalKind.FailedPrecondition, $"session {sessionId} is {Name(record.Phase)}: a dot cannot be redone");
        }
        var ids = allInDoubt
            ? _ledger.LoadDotsInState(sessionId, DotLedgerState.InDoubt).Select(d => d.Dot.DotId).ToList()
            : dotIds.ToList();
        if (ids.Count == 0)
        {
            throw new RefusedException(RefusalKind.InvalidArgument, allInDoubt ? $"session {sessionId} has no dots in doubt" : "name the dots to resolve (or all in doubt)");
        }
        try
        {
            _ledger.Resolve(sessionId, ids, to, string.IsNullOrWhiteSpace(operatorName) ? "operator" : operatorName);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            throw new RefusedException(RefusalKind.InvalidArgument, e.Message);
        }
        Changed();
        return Snapshot(sessionId);
    }

    /// <summary>
    /// Snapshots of a session, shared by every watcher (built once per change, see
    /// <see cref="SessionSnapshots"/>): one now, then the latest on every change (at most every
    /// 100 ms) and at least every 500 ms, until the session completes or is aborted (or, while the
    /// controller shuts down, stops running), or the caller cancels.
    /// </summary>
    public IAsyncEnumerable<PublishedSnapshot> WatchAsync(string sessionId, CancellationToken cancellationToken) =>
        _snapshots.WatchAsync(sessionId, s => s.IsFinal || (_shuttingDown && s.Record.Phase is not (SessionPhase.Running or SessionPhase.Pausing)), cancellationToken);

    /// <summary>
    /// The controller is stopping (SIGTERM): the running session finishes its current dot and pauses,
    /// nothing new starts, and watchers are released once nothing runs.
    /// </summary>
    public void BeginShutdown()
    {
        _shuttingDown = true;
        StopActiveRun(RunCommandKind.Pause, "the controller is shutting down");
        Changed();
        bool idle;
        lock (_gate) idle = _active is null;
        if (idle) _quiesced.Cancel();
    }

    /// <summary>
    /// Cancelled once the controller is shutting down and no session runs any more: the operator's
    /// heartbeat streams stay open until then, so a shutdown lets the current dot finish supervised
    /// instead of looking like a console that hung up mid-dot.
    /// </summary>
    public CancellationToken Quiesced => _quiesced.Token;

    private readonly CancellationTokenSource _quiesced = new();

    /// <summary>Waits until no session is running (for shutdown and tests).</summary>
    public async Task WaitIdleAsync(TimeSpan timeout)
    {
        Task? running;
        lock (_gate) running = _active?.Task;
        if (running is not null) await running.WaitAsync(timeout);
    }

    /// <summary>
    /// Whether a session could start now, before anything moves or is created: every reason it would
    /// be refused, each naming the command or flag that fixes it (homing apart: a console may home
    /// first). The supervising console is checked only when <paramref name="consoleId"/> is given.
    /// </summary>
    public StartCheck CheckStart(string? consoleId, CalibrationOverrideRequest? calibrationOverride)
    {
        var refusals = MachineRefusals(consoleId);
        try
        {
            _calibration?.ForSessionStart(calibrationOverride);
        }
        catch (RefusedException e)
        {
            refusals.Add(e.Message + (calibrationOverride is null ? " (or start anyway with --calibration-override REASON: smp run, smp session resume)" : ""));
        }
        return new StartCheck(refusals, NeedsHoming: _gantry.IsConnected && !_gantry.IsHomed);
    }

    /// <summary>Every refusal but the calibration's, in the order they are reported.</summary>
    private List<string> MachineRefusals(string? consoleId)
    {
        // The machine's own (latch, link, settings, who holds it), then the session's; homing is told apart.
        var refusals = _readiness.Refusals(needsHoming: false, needsMatchingSettings: true).ToList();
        if (_shuttingDown) refusals.Insert(_safety.IsLatched ? 1 : 0, "the controller is shutting down");
        if (consoleId is not null && _presence.AbsenceReason(consoleId) is { } absent) refusals.Add("no operator is supervising: " + absent);
        if (_patientSwitch is { IsEngaged: false }) refusals.Add(PatientPressed + ": ask the patient, then resume");
        // Wrong intrinsics are invisible in the tracker's own figures: no default, and no override.
        if (_headPose is TrackedHeadPoseSource { HasIntrinsics: false } camera)
        {
            var why = camera.IntrinsicsOrigin.StartsWith("NOT USED", StringComparison.Ordinal) ? $" for its image size ({camera.IntrinsicsOrigin})" : "";
            refusals.Add($"the camera ({camera.Frames.Description}) has no intrinsics{why}, so the head is not tracked: run smp calibrate intrinsics (with this camera), or start smp-controller with --intrinsics FILE");
        }
        return refusals;
    }

    /// <summary>
    /// Which head position a start or resume of <paramref name="sessionId"/> enters (that of its first pending dot),
    /// and whether it must be registered first: its plan names a head model and that position has no valid surface
    /// registration. The reason says which, in words.
    /// </summary>
    public (int Patch, bool Needed, string Reason) SurfaceNeeded(string sessionId)
    {
        Find(sessionId);
        var patches = PlanPatches.OfJson(_ledger.LoadPlanJson(sessionId));
        if (patches.NominalHeadFromScalp is null) return (0, false, "the plan names no head model: its own skin heights are used");
        var next = _ledger.LoadDots(sessionId).FirstOrDefault(d => d.State == DotLedgerState.Pending);
        if (next is null) return (0, false, "no dot is pending");
        var patch = patches.Of(next.Dot.DotId);
        var where = patch == 0 ? "the plan's head position" : $"head position {patch}";
        if (_ledger.LatestSurfaceRegistration(sessionId, patch) is { } registration) return (patch, false, $"{where} is registered ({registration.Id})");
        var withdrawn = _ledger.ListSurfaceRegistrations(sessionId).FirstOrDefault(r => r.Patch == patch && r.Valid);
        return withdrawn?.WithdrawnBecause is { } because
            ? (patch, true, $"{where} has no valid surface registration: {withdrawn.Id} was withdrawn by a re-check ({because})")
            : (patch, true, $"{where} has no valid surface registration");
    }

    /// <summary>
    /// Whether the head position a start or resume of <paramref name="sessionId"/> enters must first be matched to its
    /// treatment's earlier dots (smp treatment match): a treatment session after dots were placed in earlier sessions
    /// (a touch-up always then) whose head position's surface registration is not an accepted match. The new dots keep
    /// their spacing to the dots really there, and a touch-up restores only what the camera saw faded or missing, only
    /// on such a registration. <c>TouchUp</c> says the session is a touch-up (no override).
    /// </summary>
    public (int Patch, bool Needed, bool TouchUp, string Reason) EarlierDotsMatchNeeded(string sessionId)
    {
        var record = Find(sessionId);
        if (record.TreatmentId is not { } treatmentId) return (0, false, false, "the session is not part of a treatment");
        var touchUp = _ledger.FindTreatmentSession(sessionId)?.Kind == TreatmentSessionKind.TouchUp;
        var next = _ledger.LoadDots(sessionId).FirstOrDefault(d => d.State == DotLedgerState.Pending);
        if (next is null) return (0, false, touchUp, "no dot is pending");
        var patch = PlanPatches.OfJson(_ledger.LoadPlanJson(sessionId)).Of(next.Dot.DotId);
        var where = patch == 0 ? "the plan's head position" : $"head position {patch}";
        if (!_ledger.LoadTreatmentDots(treatmentId, record.TreatmentSessionNumber - 1).Any(d => d.State == DotLedgerState.Placed))
        {
            return (patch, false, touchUp, "no dot of an earlier session of the treatment is placed");
        }
        var registration = _ledger.LatestSurfaceRegistration(sessionId, patch);
        if (registration is not null && _ledger.ListDotMatches(sessionId).Any(m => m.Accepted && m.RegistrationId == registration.Id))
        {
            return (patch, false, touchUp, $"{where} is matched to the earlier sessions' dots ({registration.Id})");
        }
        return (patch, true, touchUp, $"{where} of session {sessionId} is not matched to the earlier sessions' dots: after probing it, find them with `smp treatment match {sessionId}{(patch > 0 ? $" --patch {patch}" : "")}`");
    }

    private SessionSnapshot Launch(SessionRecord record, string verb, CalibrationOverrideRequest? calibrationOverride, string? consoleId, string? surfaceOverride = null)
    {
        // The run belongs to one console: only its heartbeats keep it going.
        var console = string.IsNullOrWhiteSpace(consoleId) ? _presence.FreshestConsole : consoleId;
        // The calibration is decided below (with the override and its operator); everything else refuses here, first reason first.
        if (MachineRefusals(console ?? "").FirstOrDefault() is { } refusal) throw new RefusedException(RefusalKind.FailedPrecondition, refusal);
        if (!_gantry.IsHomed) throw new RefusedException(RefusalKind.FailedPrecondition, GantryConnection.NotHomedRefusal);
        if (console is null) throw new RefusedException(RefusalKind.FailedPrecondition, "no operator is supervising: no operator console is sending heartbeats");
        var operatorName = _presence.OperatorName(console);
        // The skin of the head position entered must have been measured (or an explicit, recorded override).
        var (surfacePatch, surfaceNeeded, surfaceReason) = SurfaceNeeded(record.Id);
        if (surfaceNeeded && string.IsNullOrWhiteSpace(surfaceOverride))
        {
            throw new RefusedException(RefusalKind.FailedPrecondition,
                $"{surfaceReason}: measure it with `smp surface probe {record.Id}{(surfacePatch > 0 ? $" --patch {surfacePatch}" : "")}` (or place it on the plan's own skin heights with --surface-override REASON)");
        }
        // A treatment's later session is placed relative to the earlier dots found by the camera; a touch-up without
        // that survey would place every recorded dot again, so it has no override.
        var (_, matchNeeded, touchUp, matchReason) = EarlierDotsMatchNeeded(record.Id);
        if (matchNeeded && (touchUp || string.IsNullOrWhiteSpace(surfaceOverride)))
        {
            throw new RefusedException(RefusalKind.FailedPrecondition, touchUp
                ? $"{matchReason}. A touch-up restores only the dots the camera saw faded or missing: it never starts a head position the camera has not surveyed (no override)"
                : $"{matchReason} (or place it without them with --surface-override REASON: its new dots then keep their spacing only to where the earlier dots were planned)");
        }
        // A tracked head needs a valid camera-to-gantry calibration (or an explicit, recorded override).
        var calibration = _calibration?.ForSessionStart(calibrationOverride is null ? null : calibrationOverride with { Operator = string.IsNullOrWhiteSpace(calibrationOverride.Operator) ? operatorName : calibrationOverride.Operator });
        lock (_gate)
        {
            if (_active is not null)
            {
                throw new RefusedException(RefusalKind.FailedPrecondition, $"session {_active.SessionId} is already running");
            }
            // The run holds the machine until it ends; whoever took it since the check above wins.
            var lease = _readiness.Lease.TryAcquire(MachineUse.Session, "session " + record.Id, out var holder)
                ?? throw new RefusedException(RefusalKind.FailedPrecondition, holder!.BusyText);
            try
            {
                _active = Begin(record, verb, calibration, console, operatorName);
                _activeLease = lease;
                if (surfaceNeeded)
                {
                    _ledger.Audit(record.Id, "surface-override", $"{verb} {surfaceReason[..1].ToLowerInvariant()}{surfaceReason[1..]}: placed on the plan's own skin heights, overridden by {operatorName}: {surfaceOverride}");
                }
                if (matchNeeded)
                {
                    _ledger.Audit(record.Id, "earlier-dots-override", $"{verb} although {matchReason[..1].ToLowerInvariant()}{matchReason[1..]}: overridden by {operatorName}: {surfaceOverride}");
                }
            }
            catch
            {
                lease.Dispose();
                throw;
            }
            var run = _active;
            run.Task = Task.Run(async () => End(run, await _runner.RunAsync(run)));
        }
        Changed();
        return Snapshot(record.Id);
    }

    /// <summary>Records what the run starts with and makes it (under the manager's lock, with the lease held).</summary>
    private SessionRun Begin(SessionRecord record, string verb, SessionCalibration? calibration, string console, string operatorName)
    {
        if (calibration is not null && _calibration!.Required)
        {
            _ledger.RecordSessionCalibration(record.Id, calibration.CalibrationId, calibration.Override?.Operator, calibration.Override?.Reason);
            _ledger.Audit(record.Id, calibration.Override is null ? "calibration" : "calibration-override", calibration.Override is null
                ? $"{verb} with camera-to-gantry calibration {calibration.CalibrationId}"
                : $"{verb} WITHOUT a valid camera-to-gantry calibration: overridden by {calibration.Override.Operator}: {calibration.Override.Reason}");
        }
        if (_headPose is TrackedHeadPoseSource camera)
        {
            // Wrong intrinsics cannot be seen afterwards in the poses: which ones placed these dots is recorded with the session.
            var k = camera.Intrinsics;
            _ledger.Audit(record.Id, "intrinsics", k is null
                ? $"{verb} with camera {camera.Frames.Description} and no intrinsics"
                : FormattableString.Invariant($"{verb} with camera {camera.Frames.Description}, intrinsics {camera.IntrinsicsOrigin}: {k.WidthPx}x{k.HeightPx} px, fx {k.FxPx:0.###} fy {k.FyPx:0.###} cx {k.CxPx:0.###} cy {k.CyPx:0.###}, distortion {string.Join(' ', k.Distortion.Select(d => d.ToString("0.######", System.Globalization.CultureInfo.InvariantCulture)))}"));
        }
        var startedAt = record.StartedAt ?? _time.GetUtcNow();
        // Holds count over the whole session: a resumed run goes on from the stored tally.
        var hold = new MotionHold(record.Id, _aiming.Source.Clock, record.Holds, _ledger, _log, Changed);
        var run = new SessionRun(record.Id, startedAt, record.ElapsedSeconds, record.KinematicSeconds, _time.GetTimestamp(), hold, new TrackingGuard(_aiming, _profile, _safety))
        {
            ConsoleId = console,
            Patches = PlanPatches.OfJson(_ledger.LoadPlanJson(record.Id)),
        };
        // Every dot is aimed with its plan's skin normal: the plunge reaches the design's depth along it.
        _aiming.Normals = run.Patches.Normal;
        _ledger.UpdateSession(record.Id, SessionPhase.Running, "", record.ElapsedSeconds, record.KinematicSeconds, startedAt, null);
        _ledger.Audit(record.Id, verb, $"session {verb} by {operatorName} (console {console})");
        return run;
    }

    /// <summary>
    /// Stores how the run ended, releases the machine and tells the watchers. A record store that is unreachable then
    /// does not keep the machine taken: it is released, and the end is written once the store answers again (until
    /// then the store shows the session Running, so no console can start it again, and a restart recovers it).
    /// </summary>
    private void End(SessionRun run, (SessionPhase Phase, string Reason) end)
    {
        var (outcome, reason) = end;
        var elapsed = run.ElapsedSeconds(_time, _gantry.TimeScale);
        var holds = run.Hold.Tally;
        var endedAt = SessionPhases.IsFinal(outcome) ? _time.GetUtcNow() : (DateTimeOffset?)null;
        void Write()
        {
            // The last dot's record first (the firmware proved it placed, or it is in doubt): never dropped for an outage.
            if (run.UnrecordedDot is { } dot)
            {
                dot();
                run.UnrecordedDot = null;
            }
            var record = _ledger.FindSession(run.SessionId)!;
            if (!SessionPhases.Allows(SessionStep.RunEnded, record.Phase, outcome))
            {
                Log.NotInPhaseTable(_log, run.SessionId, outcome, record.Phase);
            }
            _ledger.UpdateSession(run.SessionId, outcome, reason, elapsed, run.KinematicSeconds, record.StartedAt, endedAt);
            _ledger.RecordHolds(run.SessionId, holds);
            _ledger.Audit(run.SessionId, Name(outcome).ToLowerInvariant(), reason.Length > 0 ? reason : Name(outcome));
        }
        StoreUnavailableException? unwritten = null;
        lock (_gate)
        {
            try
            {
                Write();
            }
            catch (StoreUnavailableException e)
            {
                unwritten = e;
            }
            _active = null;
            _activeLease?.Dispose();
            _activeLease = null;
            if (_shuttingDown) _quiesced.Cancel();
        }
        if (unwritten is not null)
        {
            Log.EndNotStored(_log, run.SessionId, outcome, unwritten.Message);
            _ = WriteWhenStoreAnswersAsync(run.SessionId, Write);
        }
        Log.RunEnded(_log, run.SessionId, outcome, reason);
        run.Commands.Cancellation.Dispose();
        Changed();
    }

    /// <summary>Writes a run's end once the record store answers again (tried every second; given up when the controller stops).</summary>
    private async Task WriteWhenStoreAnswersAsync(string sessionId, Action write)
    {
        while (true)
        {
            await Task.Delay(TimeSpan.FromSeconds(1), _time).ConfigureAwait(false);
            try
            {
                lock (_gate) write();
                Log.EndStored(_log, sessionId);
                Changed();
                return;
            }
            catch (StoreUnavailableException)
            {
                // Still away.
            }
            catch (ObjectDisposedException)
            {
                return; // the controller stopped: its restart recovers the session
            }
        }
    }

    /// <summary>
    /// Asks the running session (if any) to stop. Called from the e-stop path and the gantry's reader
    /// loop: takes no lock of this manager (those are held across ledger writes) and cancels the run
    /// asynchronously, so the caller never runs the runner's clean-up.
    /// </summary>
    private void StopActiveRun(RunCommandKind kind, string reason)
    {
        Volatile.Read(ref _active)?.Commands.Post(kind, reason);
    }

    private SessionRecord Find(string sessionId) =>
        _ledger.FindSession(sessionId) ?? throw new RefusedException(RefusalKind.NotFound, $"no session '{sessionId}'");

    private SessionSnapshot Snapshot(string sessionId)
    {
        var record = Find(sessionId);
        var tally = _ledger.Tally(sessionId);
        var inDoubt = tally.InDoubt == 0 ? [] : _ledger.LoadDotsInState(sessionId, DotLedgerState.InDoubt, MaxInDoubtListed);
        double elapsed = record.ElapsedSeconds, kinematic = record.KinematicSeconds;
        SessionRun? running = null;
        lock (_gate)
        {
            if (_active?.SessionId == sessionId)
            {
                running = _active;
                elapsed = _active.ElapsedSeconds(_time, _gantry.TimeScale);
                kinematic = _active.KinematicSeconds;
                if (record.Phase == SessionPhase.Running && _active.Commands.Posted is { Kind: RunCommandKind.Pause or RunCommandKind.Abort } stopping)
                {
                    record = record with { Phase = SessionPhase.Pausing, Reason = stopping.Reason };
                }
            }
        }
        var checks = record.TreatmentId is null ? null : _ledger.CheckTally(sessionId);
        return new SessionSnapshot(record, tally, inDoubt, elapsed, kinematic, Tracking(running, record.Holds), checks);
    }

    /// <summary>
    /// Tracking and the hold as the cycle sees them now, with the running session's hold (if a session runs). Read from
    /// memory only: it answers while the record store is unreachable (a hold for the store shows its reason here).
    /// </summary>
    public TrackingView Tracking()
    {
        SessionRun? running;
        lock (_gate) running = _active;
        return Tracking(running);
    }

    private TrackingView Tracking(SessionRun? run, HoldTally? stored = null)
    {
        var hold = run?.Hold.Current;
        var tally = run?.Hold.Tally ?? stored ?? new HoldTally(0, 0, "");
        var (holds, lastReason, retracts) = (tally.Holds, tally.LastHoldReason, tally.Retracts);
        return new TrackingView(_aiming.Source.Description, _aiming.Source.IsTracking, _aiming.Read(), hold is not null, hold?.Reason ?? "", hold?.Seconds ?? 0,
            holds, lastReason, retracts, _profile.PoseMaxAgeMs, _profile.MinPoseQuality, _profile.MaxHeadSpeedMmPerS);
    }

    private void Changed() => _snapshots.Changed();

    /// <summary>The proto-style upper-case name of a phase, for messages.</summary>
    public static string Name(SessionPhase phase) => SessionPhases.Name(phase);

    /// <summary>A new tracked frame: wakes the cycle's waits, and the guard looks at it at once (tracking thread).</summary>
    private void OnPoseUpdated(object? sender, EventArgs e)
    {
        _poses.Signal();
        if (Volatile.Read(ref _active) is { } run) run.Guard.CheckPose(run.Commands.Posted);
    }

    private void Watchdog()
    {
        try
        {
            CheckOperator();
            if (_aiming.Source.IsTracking && Volatile.Read(ref _active) is { } run) run.Guard.CheckPose(run.Commands.Posted);
        }
#pragma warning disable CA1031 // last resort of a timer callback: an exception left there ends the whole controller (and its stop sequence); the next tick looks again
        catch (Exception e)
#pragma warning restore CA1031
        {
            Log.WatchdogFailed(_log, e);
        }
    }

    /// <summary>The dead-man and the patient's switch, from the watchdog and at once on a hang-up or a released switch (see <see cref="SessionRunner.CheckOperator"/>).</summary>
    private void CheckOperator()
    {
        if (Volatile.Read(ref _active) is not { } run || _runner.CheckOperator(run, _patientSwitch) is null) return;
        OperatorHoldStarted?.Invoke(this, new OperatorHoldEventArgs(run.SessionId, _time.GetTimestamp()));
        Changed();
    }

    internal const string PatientPressed = "the patient's hand switch is pressed (or its circuit is open)";

    /// <summary>Raised when the dead-man (heartbeat or pedal) or the patient's switch stopped a run.</summary>
    public event EventHandler<OperatorHoldEventArgs>? OperatorHoldStarted;

    public async ValueTask DisposeAsync()
    {
        await _watchdog.DisposeAsync();
        SessionRun? run;
        lock (_gate) run = _active;
        if (run is not null)
        {
            run.Commands.Post(RunCommandKind.Pause, "the controller is shutting down");
            try
            {
                await run.Task!.WaitAsync(TimeSpan.FromSeconds(30));
            }
            catch (TimeoutException)
            {
                Log.DidNotStop(_log, run.SessionId);
            }
        }
        await _snapshots.DisposeAsync();
    }

    /// <summary>Log messages (source-generated).</summary>
    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Critical, Message = "The session watchdog's look failed; it looks again at its next tick")]
        public static partial void WatchdogFailed(ILogger log, Exception error);

        [LoggerMessage(Level = LogLevel.Error, Message = "Session {SessionId} ended {Outcome}, but the record store is unreachable ({Error}): the end is written when it answers again")]
        public static partial void EndNotStored(ILogger log, string sessionId, SessionPhase outcome, string error);

        [LoggerMessage(Level = LogLevel.Information, Message = "Session {SessionId}: its end is stored now that the record store answers again")]
        public static partial void EndStored(ILogger log, string sessionId);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Recovered session {SessionId} after a restart: now FAULTED")]
        public static partial void Recovered(ILogger log, string sessionId);

        [LoggerMessage(Level = LogLevel.Error, Message = "Session {SessionId}: a run ending {Phase} from {From} is not in the phase table")]
        public static partial void NotInPhaseTable(ILogger log, string sessionId, SessionPhase phase, SessionPhase from);

        [LoggerMessage(Level = LogLevel.Information, Message = "Session {SessionId} is {Phase}: {Reason}")]
        public static partial void RunEnded(ILogger log, string sessionId, SessionPhase phase, string reason);

        [LoggerMessage(Level = LogLevel.Error, Message = "Session {SessionId} did not stop within 30 s of shutdown")]
        public static partial void DidNotStop(ILogger log, string sessionId);
    }
}

/// <summary>A run stopped for the operator (<see cref="SessionManager.OperatorHoldStarted"/>).</summary>
public sealed class OperatorHoldEventArgs(string sessionId, long timestamp) : EventArgs
{
    /// <summary>The session whose run stopped.</summary>
    public string SessionId { get; } = sessionId;

    /// <summary>TimeProvider timestamp of the decision.</summary>
    public long Timestamp { get; } = timestamp;
}
