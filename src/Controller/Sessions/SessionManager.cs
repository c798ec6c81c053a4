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
public sealed record SessionSnapshot(SessionRecord Record, DotTally Tally, IReadOnlyList<LedgerDot> InDoubt, double ElapsedSeconds, double KinematicSeconds, TrackingView? Tracking = null)
{
    /// <summary>Placed dots per machine-time second.</summary>
    public double DotsPerSecond => ElapsedSeconds > 0 ? Tally.Placed / ElapsedSeconds : 0;

    /// <summary>Remaining machine time at the current rate; 0 when unknown.</summary>
    public double EtaSeconds => DotsPerSecond > 0 ? Tally.Pending / DotsPerSecond : 0;

    public bool IsFinal => Record.Phase is SessionPhase.Completed or SessionPhase.Aborted;
}

/// <summary>
/// The session state machine and the per-dot cycle. One session runs at a time (there is one
/// machine). Every dot's state lives in the durable ledger; the in-memory state here is only the
/// running session's clock and its stop request.
/// </summary>
public sealed class SessionManager : IAsyncDisposable
{
    private const int MaxVerifyTries = 3;
    private const int MaxInDoubtListed = 100;
    private readonly LedgerStore _ledger;
    private readonly GantryConnection _gantry;
    private readonly SafetySupervisor _safety;
    private readonly OperatorPresence _presence;
    private readonly MachineProfile _profile;
    private readonly PlanValidator _validator;
    private readonly DotProgram _program;
    private readonly Aiming _aiming;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly CalibrationGate? _calibration;
    private readonly IHeadPoseSource _headPose;
    private readonly Lock _gate = new();
    private ActiveRun? _active;
    private volatile bool _shuttingDown;
    private readonly SessionSnapshots _snapshots;
    private TaskCompletionSource _poseUpdated = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ITimer _watchdog;
    private readonly ISafetySwitch? _patientSwitch;

    /// <summary>
    /// How often the watchdog looks at the running session's operator and tracking without waiting
    /// for an event: a console that goes silent, or a camera that stops sending frames, only shows
    /// as something that keeps aging.
    /// </summary>
    public static readonly TimeSpan WatchdogPeriod = TimeSpan.FromMilliseconds(25);
    // Hold counts of each session's last run, for snapshots after the run ended (in memory only).

    public SessionManager(LedgerStore ledger, GantryConnection gantry, SafetySupervisor safety, OperatorPresence presence, IHeadPoseSource headPose, MachineProfile profile, TimeProvider timeProvider, ILogger<SessionManager> log, CalibrationGate? calibration = null, SafetySwitches? switches = null)
    {
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
        headPose.PoseUpdated += OnPoseUpdated;
        // The guard also looks without frames: a camera that stops delivering them only shows as a pose that keeps aging.
        _watchdog = timeProvider.CreateTimer(_ => Watchdog(), null, WatchdogPeriod, WatchdogPeriod);
        // A console that hangs up, or a released foot pedal, holds the run at once (not at the next look).
        presence.Lost += (_, _) => CheckOperator();
        if (_patientSwitch is not null) _patientSwitch.Disengaged += CheckOperator;
        _time = timeProvider;
        _log = log;
        _snapshots = new SessionSnapshots(Snapshot, timeProvider, log);
        _safety.EmergencyStopLatched += (_, s) => StopActiveRun(StopKind.EmergencyStop, $"emergency stop from {s.Source}" + (s.Reason.Length > 0 ? ": " + s.Reason : ""));
        _gantry.Faulted += (_, fault) => StopActiveRun(StopKind.Fault, "gantry fault: " + fault.Message);
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
            _log.LogWarning("Recovered session {SessionId} after a restart: now FAULTED", id);
        }
        if (recovered.Count > 0) Changed();
        return recovered;
    }

    /// <summary>Parses and validates a plan file's text against the profile.</summary>
    public PlanValidationResult ValidatePlanJson(string planJson) => _validator.ValidateJson(planJson);

    /// <summary>Validates a plan given as a message (its size is checked as canonical JSON).</summary>
    public PlanValidationResult ValidatePlan(Plan plan) => _validator.ValidateJson(JsonFormatter.Default.Format(plan));

    /// <summary>Pure motion + dwell time of a valid plan on this profile, from the fixed head pose, seconds.</summary>
    public double EstimateKinematicSeconds(Plan plan)
    {
        var head = _profile.FixedHead.ToTransform();
        var grid = new StepGrid(_profile.StepsPerMm);
        var current = _profile.HomePosition;
        double seconds = 0;
        foreach (var index in PathOrdering.Order(plan.Dots))
        {
            var d = plan.Dots[index];
            var skin = head.Apply(new Vec3(d.XMm, d.YMm, d.ZMm));
            var hover = grid.Quantise(skin with { Z = skin.Z + _profile.HoverHeightMm });
            var depth = grid.Quantise(skin with { Z = skin.Z - d.DepthMm });
            seconds += _program.Travel(current, hover).Sum(l => l.KinematicSeconds) + _program.Place(hover, depth, d.DwellMs).Sum(l => l.KinematicSeconds);
            current = hover;
        }
        return seconds;
    }

    /// <summary>Validates and stores a new session (CREATED). Throws <see cref="SessionException"/> (InvalidArgument) with the violations.</summary>
    public (SessionSnapshot? Session, PlanValidationResult Validation) Create(PlanValidationResult validation)
    {
        if (!validation.IsValid || validation.Plan is null) return (null, validation);
        var plan = validation.Plan;
        var order = PathOrdering.Order(plan.Dots);
        var dots = new List<PlannedDot>(order.Length);
        for (var seq = 0; seq < order.Length; seq++)
        {
            var d = plan.Dots[order[seq]];
            dots.Add(new PlannedDot(seq, d.Id, d.XMm, d.YMm, d.ZMm, d.DepthMm, d.DwellMs, d.PigmentId));
        }
        var record = _ledger.CreateSession(string.IsNullOrEmpty(plan.Name) ? "unnamed plan" : plan.Name, JsonFormatter.Default.Format(plan), _profile.Name, dots);
        _ledger.Audit(record.Id, "created", $"session created from plan '{record.PlanName}' with {dots.Count} dots");
        Changed();
        return (Snapshot(record.Id), validation);
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
    public SessionSnapshot Start(string sessionId, CalibrationOverrideRequest? calibrationOverride = null, string? consoleId = null)
    {
        var record = Find(sessionId);
        if (record.Phase != SessionPhase.Created)
        {
            throw new SessionException(SessionErrorKind.FailedPrecondition, $"session {sessionId} is {Name(record.Phase)}; only a CREATED session can be started (use resume)");
        }
        return Launch(record, "started", calibrationOverride, consoleId);
    }

    /// <summary>
    /// CREATED → RUNNING; with <paramref name="checkFirst"/>, the whole program (aimed with the pose
    /// available now) is first streamed in the firmware's check mode, and any refusal or soft limit
    /// refuses the start (FailedPrecondition listing each, with its dot).
    /// </summary>
    public async Task<SessionSnapshot> StartAsync(string sessionId, bool checkFirst, CancellationToken cancellationToken, CalibrationOverrideRequest? calibrationOverride = null, string? consoleId = null)
    {
        if (!checkFirst) return Start(sessionId, calibrationOverride, consoleId);
        var record = Find(sessionId);
        if (record.Phase != SessionPhase.Created)
        {
            throw new SessionException(SessionErrorKind.FailedPrecondition, $"session {sessionId} is {Name(record.Phase)}; only a CREATED session can be started (use resume)");
        }
        RequireMachineFree("check the program");
        if (!_gantry.IsHomed) throw new SessionException(SessionErrorKind.FailedPrecondition, GantryConnection.NotHomedRefusal);
        if (_gantry.SettingsMismatch is { } settings) throw new SessionException(SessionErrorKind.FailedPrecondition, settings);
        var status = await _gantry.RequireClient().QueryStatusAsync(cancellationToken);
        var pending = _ledger.LoadDots(sessionId).Where(d => d.State == DotLedgerState.Pending).Select(d => d.Dot);
        var program = CheckMode.SessionProgram(_program, _aiming, pending, status.MachinePosition);
        if (program.NotAimed.Count > 0)
        {
            throw new SessionException(SessionErrorKind.FailedPrecondition, $"{program.NotAimed.Count} dot(s) cannot be aimed: " + string.Join("; ", program.NotAimed.Take(10)));
        }
        CheckReport report;
        try
        {
            report = await CheckMode.RunAsync(_gantry, program.Lines, new CheckModeOptions { Send = _safety.SendMotionLineAsync }, cancellationToken);
        }
        catch (Exception e) when (e is InvalidOperationException or GantryFaultException or TimeoutException)
        {
            throw new SessionException(SessionErrorKind.FailedPrecondition, "check mode could not run: " + e.Message);
        }
        var text = report.Describe(program.DotIds);
        _ledger.Audit(sessionId, "checked", text);
        if (!report.Passed) throw new SessionException(SessionErrorKind.FailedPrecondition, text);
        return Launch(Find(sessionId), "started", calibrationOverride, consoleId);
    }

    /// <summary>PAUSED / FAULTED / EMERGENCY_STOPPED → RUNNING, once nothing is in doubt.</summary>
    public SessionSnapshot Resume(string sessionId, CalibrationOverrideRequest? calibrationOverride = null, string? consoleId = null)
    {
        var record = Find(sessionId);
        if (record.Phase is not (SessionPhase.Paused or SessionPhase.Faulted or SessionPhase.EmergencyStopped))
        {
            throw new SessionException(SessionErrorKind.FailedPrecondition, $"session {sessionId} is {Name(record.Phase)}; only a PAUSED, FAULTED or EMERGENCY_STOPPED session can be resumed");
        }
        RequireNotLatched();
        var tally = _ledger.Tally(sessionId);
        if (tally.InDoubt > 0)
        {
            throw new SessionException(SessionErrorKind.FailedPrecondition,
                $"{tally.InDoubt} dot(s) of session {sessionId} are in doubt; look at the skin and resolve them first: smp session resolve {sessionId} --all-in-doubt --as placed|redo|skip");
        }
        return Launch(record, "resumed", calibrationOverride, consoleId);
    }

    /// <summary>RUNNING → PAUSING → PAUSED: the dot in progress finishes, then the needle holds at hover.</summary>
    public SessionSnapshot Pause(string sessionId)
    {
        var record = Find(sessionId);
        lock (_gate)
        {
            if (_active?.SessionId == sessionId && _active.Stop == StopKind.None)
            {
                _active.Request(StopKind.Pause, "paused by the operator");
                _ledger.UpdateSession(sessionId, SessionPhase.Pausing, "pausing: finishing the current dot", _active.ElapsedSeconds(_time, _gantry.TimeScale), _active.KinematicSeconds, record.StartedAt, null);
            }
            else if (record.Phase is not (SessionPhase.Pausing or SessionPhase.Paused))
            {
                throw new SessionException(SessionErrorKind.FailedPrecondition, $"session {sessionId} is {Name(record.Phase)}; only a RUNNING session can be paused");
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
                _active.Request(StopKind.Abort, "aborted by the operator");
            }
            else if (record.Phase is SessionPhase.Completed or SessionPhase.Aborted)
            {
                throw new SessionException(SessionErrorKind.FailedPrecondition, $"session {sessionId} is already {Name(record.Phase)}");
            }
            else
            {
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
            if (_active?.SessionId == sessionId) throw new SessionException(SessionErrorKind.FailedPrecondition, $"session {sessionId} is running; pause it first");
        }
        if (record.Phase is SessionPhase.Running or SessionPhase.Pausing or SessionPhase.Completed)
        {
            throw new SessionException(SessionErrorKind.FailedPrecondition, $"session {sessionId} is {Name(record.Phase)}; only a stopped session (PAUSED, FAULTED, EMERGENCY_STOPPED, ABORTED or CREATED) can be continued in a new one");
        }
        var tally = _ledger.Tally(sessionId);
        if (tally.InDoubt > 0)
        {
            throw new SessionException(SessionErrorKind.FailedPrecondition,
                $"{tally.InDoubt} dot(s) of session {sessionId} are in doubt; look at the skin and resolve them first: smp session resolve {sessionId} --all-in-doubt --as placed|redo|skip");
        }
        if (tally.Pending == 0) throw new SessionException(SessionErrorKind.FailedPrecondition, $"session {sessionId} has no dot left to place");
        var plan = Plan.Parser.ParseJson(_ledger.LoadPlanJson(sessionId) ?? throw new SessionException(SessionErrorKind.NotFound, $"no plan stored for session {sessionId}"));
        var pending = _ledger.LoadDotsInState(sessionId, DotLedgerState.Pending).Select(d => d.Dot.DotId).ToHashSet(StringComparer.Ordinal);
        var remaining = plan.Clone();
        remaining.Dots.Clear();
        remaining.Dots.Add(plan.Dots.Where(d => pending.Contains(d.Id)));
        var (created, validation) = Create(ValidatePlan(remaining));
        if (created is null) throw new SessionException(SessionErrorKind.FailedPrecondition, $"the remaining dots of session {sessionId} no longer pass this profile's checks: " + string.Join("; ", validation.Violations.Take(5).Select(v => v.Message)));
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
                throw new SessionException(SessionErrorKind.FailedPrecondition, $"session {sessionId} is running; pause it before resolving dots");
            }
        }
        if (record.Phase is SessionPhase.Completed or SessionPhase.Aborted && to == DotLedgerState.Pending)
        {
            throw new SessionException(SessionErrorKind.FailedPrecondition, $"session {sessionId} is {Name(record.Phase)}: a dot cannot be redone");
        }
        var ids = allInDoubt
            ? _ledger.LoadDotsInState(sessionId, DotLedgerState.InDoubt).Select(d => d.Dot.DotId).ToList()
            : dotIds.ToList();
        if (ids.Count == 0)
        {
            throw new SessionException(SessionErrorKind.InvalidArgument, allInDoubt ? $"session {sessionId} has no dots in doubt" : "name the dots to resolve (or all in doubt)");
        }
        try
        {
            _ledger.Resolve(sessionId, ids, to, string.IsNullOrWhiteSpace(operatorName) ? "operator" : operatorName);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            throw new SessionException(SessionErrorKind.InvalidArgument, e.Message);
        }
        Changed();
        return Snapshot(sessionId);
    }

    /// <summary>Runs the homing cycle; refused while a session runs or the e-stop is latched.</summary>
    public async Task HomeAsync(CancellationToken cancellationToken)
    {
        RequireMachineFree("home");
        var client = _gantry.RequireClient();
        var status = await client.QueryStatusAsync(cancellationToken);
        if (status.IsHold)
        {
            throw new SessionException(SessionErrorKind.FailedPrecondition, $"the gantry is in {status.State}; reset the e-stop or resume before homing");
        }
        try
        {
            await _gantry.HomeAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested && _gantry.IsConnected)
        {
            // Stopped by its caller: a homing cycle cannot be held, only reset (grbl then reports it
            // failed and the machine stays unhomed). Not left to run on unwatched.
            await client.SoftResetAsync(CancellationToken.None);
            _ledger.Audit(null, "homing-stopped", "homing cycle stopped by its caller (soft reset): the machine is not homed");
            throw;
        }
        _ledger.Audit(null, "homed", "homing cycle completed");
    }

    /// <summary>A relative jog inside the envelope; refused while a session runs, the e-stop is latched or the machine is not homed.</summary>
    public async Task JogAsync(Vec3 deltaMm, double feedMmPerMin, CancellationToken cancellationToken)
    {
        if (!deltaMm.IsFinite || deltaMm.Length > Math.Max(_profile.MaxTravelMm.X, _profile.MaxTravelMm.Y))
        {
            throw new SessionException(SessionErrorKind.InvalidArgument, $"jog {deltaMm} mm is not a finite move inside the machine");
        }
        if (!double.IsFinite(feedMmPerMin) || feedMmPerMin < 0 || feedMmPerMin > _profile.TravelFeedMmPerMin)
        {
            throw new SessionException(SessionErrorKind.InvalidArgument, FormattableString.Invariant(
                $"jog feed {feedMmPerMin} mm/min is not allowed: give 0 (the profile's travel feed) or up to {_profile.TravelFeedMmPerMin:0} mm/min (profile {_profile.Name})"));
        }
        RequireMachineFree("jog");
        if (!_gantry.IsHomed)
        {
            throw new SessionException(SessionErrorKind.FailedPrecondition, GantryConnection.NotHomedRefusal);
        }
        var feed = feedMmPerMin > 0 ? feedMmPerMin : _profile.TravelFeedMmPerMin;
        var client = _gantry.RequireClient();
        using var activity = _gantry.Activity.Begin("jog", 1);
        var status = await client.QueryStatusAsync(cancellationToken);
        var grid = new StepGrid(_profile.StepsPerMm);
        var target = grid.Quantise(status.MachinePosition + deltaMm);
        if (!_profile.InEnvelope(target))
        {
            throw new SessionException(SessionErrorKind.InvalidArgument, $"jog target {target} is outside the machine envelope ({_profile.EnvelopeText()}, profile {_profile.Name})");
        }
        var line = "$J=G90 G21 X" + StepGrid.Format(target.X) + " Y" + StepGrid.Format(target.Y) + " Z" + StepGrid.Format(target.Z) + " F" + feed.ToString("0", System.Globalization.CultureInfo.InvariantCulture);
        var ack = await client.ExecuteAsync(line, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10), _time, CancellationToken.None);
        if (!ack.Ok) throw new SessionException(SessionErrorKind.FailedPrecondition, $"jog refused by the firmware: error:{ack.ErrorCode} {ack.ErrorText}");
        try
        {
            // grbl answers other G-code with error:9 while it jogs (no G4 sync): follow its state until the jog has ended.
            var bound = TimeSpan.FromSeconds((2 * new Kinematics(_profile).Move(status.MachinePosition, target, feed).DurationSeconds / _gantry.TimeScale) + 5);
            var started = _time.GetTimestamp();
            while ((await client.QueryStatusAsync(cancellationToken)).State == "Jog")
            {
                if (_time.GetElapsedTime(started) > bound) throw new TimeoutException(FormattableString.Invariant($"the jog did not end within {bound.TotalSeconds:0.0} s"));
                await Task.Delay(TimeSpan.FromMilliseconds(20), _time, cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopped by its caller: grbl's jog cancel decelerates and drops the rest of the jog.
            await client.SendRealtimeAsync(GrblRealtime.JogCancel, CancellationToken.None);
            _ledger.Audit(null, "jog-stopped", "jog stopped by its caller (jog cancel)");
            throw;
        }
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
        StopActiveRun(StopKind.Pause, "the controller is shutting down");
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

    private void RequireMachineFree(string what)
    {
        if (_safety.IsLatched) throw new SessionException(SessionErrorKind.FailedPrecondition, $"cannot {what}: the emergency stop is latched (smp estop --reset)");
        if (_gantry.IsChecking) throw new SessionException(SessionErrorKind.FailedPrecondition, $"cannot {what}: a program is being checked in check mode");
        if (_calibration?.BusyWith is { } calibrating) throw new SessionException(SessionErrorKind.FailedPrecondition, $"cannot {what}: a {calibrating} is moving the machine");
        lock (_gate)
        {
            if (_active is not null) throw new SessionException(SessionErrorKind.FailedPrecondition, $"cannot {what}: session {_active.SessionId} is running");
        }
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
        catch (SessionException e)
        {
            refusals.Add(e.Message + (calibrationOverride is null ? " (or start anyway with --calibration-override REASON: smp run, smp session resume)" : ""));
        }
        return new StartCheck(refusals, NeedsHoming: _gantry.IsConnected && !_gantry.IsHomed);
    }

    /// <summary>Every refusal but the calibration's, in the order they are reported.</summary>
    private List<string> MachineRefusals(string? consoleId)
    {
        var refusals = new List<string>();
        if (_safety.IsLatched) refusals.Add(LatchedRefusal);
        if (_shuttingDown) refusals.Add("the controller is shutting down");
        if (!_gantry.IsConnected) refusals.Add($"the gantry ({_gantry.Description}) is not connected: check the cable and run smp machine connect");
        else if (_gantry.SettingsMismatch is { } settings) refusals.Add(settings);
        if (_gantry.IsChecking) refusals.Add("a program is being checked in check mode; start when the check is over");
        if (_calibration?.BusyWith is { } calibrating) refusals.Add($"a {calibrating} is moving the machine; start when it is over");
        if (RunningSessionId is { } running) refusals.Add($"session {running} is running");
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

    private SessionSnapshot Launch(SessionRecord record, string verb, CalibrationOverrideRequest? calibrationOverride, string? consoleId)
    {
        // The run belongs to one console: only its heartbeats keep it going.
        var console = string.IsNullOrWhiteSpace(consoleId) ? _presence.FreshestConsole : consoleId;
        // The calibration is decided below (with the override and its operator); everything else refuses here, first reason first.
        if (MachineRefusals(console ?? "").FirstOrDefault() is { } refusal) throw new SessionException(SessionErrorKind.FailedPrecondition, refusal);
        if (!_gantry.IsHomed) throw new SessionException(SessionErrorKind.FailedPrecondition, GantryConnection.NotHomedRefusal);
        if (console is null) throw new SessionException(SessionErrorKind.FailedPrecondition, "no operator is supervising: no operator console is sending heartbeats");
        var operatorName = _presence.OperatorName(console);
        // A tracked head needs a valid camera-to-gantry calibration (or an explicit, recorded override).
        var calibration = _calibration?.ForSessionStart(calibrationOverride is null ? null : calibrationOverride with { Operator = string.IsNullOrWhiteSpace(calibrationOverride.Operator) ? operatorName : calibrationOverride.Operator });
        lock (_gate)
        {
            if (_active is not null)
            {
                throw new SessionException(SessionErrorKind.FailedPrecondition, $"session {_active.SessionId} is already running");
            }
            if (_calibration?.BusyWith is { } calibrating)
            {
                throw new SessionException(SessionErrorKind.FailedPrecondition, $"a {calibrating} is moving the machine; start when it is over");
            }
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
            var run = new ActiveRun(record.Id, startedAt, record.ElapsedSeconds, record.KinematicSeconds, _time.GetTimestamp(), record.Holds) { ConsoleId = console };
            _active = run;
            _ledger.UpdateSession(record.Id, SessionPhase.Running, "", record.ElapsedSeconds, record.KinematicSeconds, startedAt, null);
            _ledger.Audit(record.Id, verb, $"session {verb} by {operatorName} (console {console})");
            run.Task = Task.Run(() => RunAsync(run));
        }
        Changed();
        return Snapshot(record.Id);
    }

    private void RequireNotLatched()
    {
        if (_safety.IsLatched) throw new SessionException(SessionErrorKind.FailedPrecondition, LatchedRefusal);
    }

    private const string LatchedRefusal = "the emergency stop is latched: check the patient and the machine, then reset it with smp estop --reset";

    /// <summary>
    /// Asks the running session (if any) to stop. Called from the e-stop path and the gantry's reader
    /// loop: takes no lock of this manager (those are held across ledger writes) and cancels the run
    /// asynchronously, so the caller never runs the runner's clean-up.
    /// </summary>
    private void StopActiveRun(StopKind kind, string reason)
    {
        Volatile.Read(ref _active)?.Request(kind, reason);
    }

    /// <summary>The per-dot cycle over every pending dot, in ledger order.</summary>
    private async Task RunAsync(ActiveRun run)
    {
        var ct = run.Cancellation.Token;
        PlannedDot? commanded = null;
        var outcome = SessionPhase.Completed;
        var reason = "";
        var safeStopNeeded = false;
        try
        {
            var client = _gantry.RequireClient();
            var pending = _ledger.LoadDots(run.SessionId).Where(d => d.State == DotLedgerState.Pending).Select(d => d.Dot).ToList();
            await SendPreambleAsync(client, ct);
            var position = _program.Grid.Quantise((await client.QueryStatusAsync(ct)).MachinePosition);
            for (var i = 0; i < pending.Count && run.Stop == StopKind.None;)
            {
                // A retract the guard asked for just before the runner disarmed (e.g. on its way back to
                // the hold from verify) is finished before anything else moves.
                if (run.RetractRequested) position = await FinishMotionHoldAsync(client, run, ct);

                // 1. Aim. A tracking hold waits here, needle raised, until tracking has settled.
                var (aimed, cause, raisedTo) = await AimOrHoldAsync(client, run, pending[i], position, ct);
                position = raisedTo;
                if (aimed is null)
                {
                    if (cause is not null)
                    {
                        outcome = SessionPhase.Paused;
                        reason = "held: " + cause.Reason;
                    }
                    break;
                }
                var aim = aimed;

                // 2-5 run with the tracking guard armed: if tracking fails while the needle is at or
                // below its hover point, the guard stops the motion and retracts the needle at once.
                run.Arm();
                try
                {
                    // 2. Travel at hover height.
                    var travel = _program.Travel(position, aim.HoverMm);
                    foreach (var line in travel)
                    {
                        await _safety.SendMotionLineAsync(client, line.Line, ct);
                    }
                    var travelSeconds = travel.Sum(l => l.KinematicSeconds);
                    await AckAsync(await _safety.SendMotionLineAsync(client, DotProgram.Sync.Line, ct), travelSeconds, ct);
                    position = aim.HoverMm;
                    run.Raised = false;
                    if (run.Stop != StopKind.None) break;

                    // 3. Verify before plunge: the gantry is where it should be, idle, and the target is still right.
                    HoldCause? hold = null;
                    var maxTries = _aiming.Source.IsTracking ? _profile.Tracking.MaxAimCorrections : MaxVerifyTries;
                    for (var tries = 0; ; tries++)
                    {
                        (var verified, hold, var correctionSeconds) = await VerifyAsync(client, run, aim, ct);
                        travelSeconds += correctionSeconds;
                        position = verified.HoverMm;
                        if (hold is not null || verified == aim) break;
                        aim = verified;
                        if (tries + 1 >= maxTries)
                        {
                            hold = new HoldCause($"dot {aim.Dot.DotId}: the target kept moving after {maxTries} corrections", WaitsForTracking: true);
                            break;
                        }
                    }
                    run.AddKinematic(travelSeconds);
                    if (hold is not null)
                    {
                        // A guard retract moves the gantry under the verify: that is the hold, not a mismatch.
                        if (run.RetractRequested) throw new MotionHoldException();
                        if (hold.WaitsForTracking)
                        {
                            run.PendingHold = hold.Reason;
                            continue; // the same dot again, through the hold at the top
                        }
                        outcome = SessionPhase.Paused;
                        reason = "held: " + hold.Reason;
                        break;
                    }

                    // 4. Record intent durably, then plunge, dwell, retract, and confirm at a sync point.
                    if (run.RetractRequested) throw new MotionHoldException();
                    _ledger.MarkCommanded(run.SessionId, aim.Dot.Seq, aim.DepthMm);
                    commanded = aim.Dot;
                    Changed();
                    var place = _program.Place(aim.HoverMm, aim.DepthMm, aim.Dot.DwellMs);
                    var placeSeconds = place.Sum(l => l.KinematicSeconds);
                    var sentPlace = new SentLine[place.Count];
                    for (var l = 0; l < place.Count; l++)
                    {
                        sentPlace[l] = await _safety.SendMotionLineAsync(client, place[l].Line, ct);
                    }
                    run.AddKinematic(placeSeconds);
                    foreach (var sent in sentPlace)
                    {
                        await AckAsync(sent, placeSeconds, ct);
                    }

                    // 5. Confirm: the sync ok proves the lines ran; the position proves they ran as written.
                    // Z moves are relative, so a plunge or retract that lost a byte leaves the needle off
                    // its hover point, and that dot is in doubt, never Placed.
                    var after = await client.QueryStatusAsync(ct);
                    var offMm = after.MachinePosition.DistanceTo(aim.HoverMm);
                    if (!after.IsIdle || offMm > PositionReportToleranceMm)
                    {
                        if (run.RetractRequested) throw new MotionHoldException();
                        throw new PlacementMismatchException(FormattableString.Invariant(
                            $"after dot {aim.Dot.DotId} the gantry is {after.State} at {after.MachinePosition}, not back at its hover point {aim.HoverMm} ({offMm:0.000} mm off): the plunge or retract did not run as commanded"));
                    }
                    _ledger.MarkPlaced(run.SessionId, aim.Dot.Seq);
                    commanded = null;
                    PersistTimersIfDue(run);
                    i++;
                    Changed();
                    if (run.RetractRequested) throw new MotionHoldException();
                }
                catch (Exception e) when (run.RetractRequested
                    && e is MotionHoldException or GantryFaultException or MotionRefusedException or TimeoutException or LineRefusedException or PlacementMismatchException)
                {
                    // The guard stopped the motion and is retracting the needle (see CheckGuard).
                    run.Disarm();
                    if (commanded is not null)
                    {
                        MarkRetractedInDoubt(run, commanded);
                        commanded = null;
                        i++;
                    }
                    position = await FinishMotionHoldAsync(client, run, ct);
                }
                finally
                {
                    run.Disarm();
                }
                // A retract asked for after the runner's last look, before it disarmed (the dot was
                // confirmed or not yet commanded): the needle is going up; set the firmware up again.
                if (run.RetractRequested) position = await FinishMotionHoldAsync(client, run, ct);
            }
            if (run.Stop != StopKind.None)
            {
                (outcome, reason) = run.Outcome();
                safeStopNeeded = run.Stop == StopKind.Fault;
            }
            else if (outcome == SessionPhase.Completed)
            {
                var tally = _ledger.Tally(run.SessionId);
                if (tally.InDoubt > 0)
                {
                    outcome = SessionPhase.Paused;
                    reason = $"all other dots done; {tally.InDoubt} dot(s) in doubt await the operator's decision";
                }
                else if (tally.Pending > 0)
                {
                    outcome = SessionPhase.Paused;
                    reason = $"{tally.Pending} dot(s) still pending";
                }
            }
            if (outcome != SessionPhase.EmergencyStopped && !safeStopNeeded)
            {
                // Normal end, pause or hold: needle drive off at hover.
                await AckAsync(await client.SendLineAsync("M5", ct), 0, ct);
                // A status report from after the M5, so that the end state shown to the operator is measured after the fact.
                await client.QueryStatusAsync(ct);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or MotionRefusedException or GantryFaultException or LineRefusedException or TimeoutException or PlacementMismatchException or MotionHoldException)
        {
            (outcome, reason) = run.Stop != StopKind.None ? run.Outcome()
                : _safety.IsLatched ? (SessionPhase.EmergencyStopped, "emergency stop")
                : (SessionPhase.Faulted, FaultText(e));
            safeStopNeeded = outcome == SessionPhase.Faulted;
        }
        catch (Exception e)
        {
            _log.LogError(e, "Session {SessionId} failed", run.SessionId);
            (outcome, reason) = (SessionPhase.Faulted, "internal error: " + e.Message);
            safeStopNeeded = true;
        }

        if (run.RetractTask is { } pendingRetract)
        {
            // The run ended while the guard was pulling the needle out: that is finished first, and what it could not do is said.
            string retractError;
            try
            {
                retractError = await pendingRetract.WaitAsync(TimeSpan.FromSeconds(30), _time, CancellationToken.None);
            }
            catch (TimeoutException)
            {
                retractError = "the motion-hold retract did not finish within 30 s";
            }
            run.ClearRetract();
            if (retractError.Length > 0 && outcome != SessionPhase.EmergencyStopped)
            {
                _log.LogError("Motion-hold retract failed: {Error}", retractError);
                reason += "; motion-hold retract: " + retractError;
                outcome = SessionPhase.Faulted;
                safeStopNeeded = true;
            }
        }
        if (commanded is not null)
        {
            // The plunge may or may not have happened: never redo it automatically.
            _ledger.MarkInDoubt(run.SessionId, commanded.Seq, reason);
            _ledger.Audit(run.SessionId, "in-doubt", $"dot {commanded.DotId} is in doubt: {reason}");
        }
        if (safeStopNeeded)
        {
            var stopError = await _safety.SafeStopAfterFaultAsync(CancellationToken.None);
            if (stopError.Length > 0) reason += "; " + stopError;
        }
        var record = _ledger.FindSession(run.SessionId)!;
        var final = outcome is SessionPhase.Completed or SessionPhase.Aborted;
        lock (_gate)
        {
            _ledger.UpdateSession(run.SessionId, outcome, reason, run.ElapsedSeconds(_time, _gantry.TimeScale), run.KinematicSeconds, record.StartedAt, final ? _time.GetUtcNow() : null);
            _ledger.RecordHolds(run.SessionId, new HoldTally(run.Holds, run.Retracts, run.LastHoldReason));
            _active = null;
            if (_shuttingDown) _quiesced.Cancel();
        }
        _ledger.Audit(run.SessionId, Name(outcome).ToLowerInvariant(), reason.Length > 0 ? reason : Name(outcome));
        _log.LogInformation("Session {SessionId} is {Phase}: {Reason}", run.SessionId, outcome, reason);
        run.Cancellation.Dispose();
        Changed();
    }

    /// <summary>The running session's time reaches the ledger every few seconds (one small write), so a restart after a crash shows it.</summary>
    private void PersistTimersIfDue(ActiveRun run)
    {
        if (_time.GetElapsedTime(run.TimersPersistedAt) < TimersPersistEvery) return;
        run.TimersPersistedAt = _time.GetTimestamp();
        _ledger.UpdateTimers(run.SessionId, run.ElapsedSeconds(_time, _gantry.TimeScale), run.KinematicSeconds);
    }

    private static readonly TimeSpan TimersPersistEvery = TimeSpan.FromSeconds(2);

    /// <summary>Why the cycle cannot go on; <paramref name="WaitsForTracking"/> holds resume by themselves once tracking settles.</summary>
    private sealed record HoldCause(string Reason, bool WaitsForTracking);

    /// <summary>Thrown inside the cycle when the tracking guard retracted the needle after the last line ran.</summary>
    private sealed class MotionHoldException() : Exception("motion hold");

    private async Task SendPreambleAsync(GrblClient client, CancellationToken ct)
    {
        foreach (var line in _program.SessionPreamble())
        {
            await AckAsync(await _safety.SendMotionLineAsync(client, line.Line, ct), 0, ct);
        }
    }

    /// <summary>
    /// Step 1 with the automatic motion hold: aims <paramref name="dot"/> with the pose predicted for
    /// the moment its plunge reaches depth. While a tracking gate fails the session holds: the
    /// needle goes <c>tracking.holdClearanceMm</c> up, the hold and its reason are published, and the
    /// cycle goes on by itself only after every gate has passed for <c>tracking.settleMs</c>. Returns
    /// the aim, or null with the cause when the session must pause for the operator (operator absent,
    /// target outside the envelope, hold longer than <c>tracking.maxHoldSeconds</c>), or null without
    /// a cause when a stop was requested. Also returns where the gantry now is.
    /// </summary>
    private async Task<(AimedDot? Aim, HoldCause? Cause, Vec3 Position)> AimOrHoldAsync(GrblClient client, ActiveRun run, PlannedDot dot, Vec3 position, CancellationToken ct)
    {
        var clock = _aiming.Source.Clock;
        long? goodSince = null;
        if (run.PendingHold is { } carried)
        {
            run.PendingHold = null;
            BeginHold(run, carried, clock, dot);
        }
        while (true)
        {
            if (run.Stop != StopKind.None) return (null, null, position);
            if (_presence.AbsenceReason(run.ConsoleId) is { } absent) return (null, new HoldCause(absent, false), position);
            var result = _aiming.AimOrHold(dot, LookAhead(dot, position));
            if (result.Aim is not null)
            {
                if (!run.Holding) return (result.Aim, null, position);
                goodSince ??= clock.GetTimestamp();
                var goodMs = clock.GetElapsedTime(goodSince.Value).TotalMilliseconds;
                if (goodMs >= _profile.Tracking.SettleMs)
                {
                    var heldS = run.EndHold(clock);
                    _ledger.Audit(run.SessionId, "resumed", FormattableString.Invariant($"tracking settled for {goodMs:0} ms after a {heldS:0.0} s hold ({run.LastHoldReason}); going on"));
                    _log.LogInformation("Session {SessionId} resumes after a {Seconds:0.0} s hold", run.SessionId, heldS);
                    Changed();
                    continue; // aim again with the freshest pose
                }
            }
            else if (!result.TrackingHold)
            {
                return (null, new HoldCause(result.HoldReason!, false), position);
            }
            else
            {
                goodSince = null;
                if (!run.Holding) BeginHold(run, result.HoldReason!, clock, dot);
                else run.UpdateHold(result.HoldReason!);
                var heldS = run.HoldSeconds(clock);
                if (heldS > _profile.Tracking.MaxHoldSeconds)
                {
                    run.EndHold(clock);
                    return (null, new HoldCause(FormattableString.Invariant($"tracking did not settle within {_profile.Tracking.MaxHoldSeconds:0} s ({result.HoldReason})"), false), position);
                }
            }
            if (run.Holding && !run.Raised)
            {
                position = await RaiseAsync(client, position, ct);
                run.Raised = true;
            }
            await WaitForPoseUpdateAsync(ct);
        }
    }

    private void BeginHold(ActiveRun run, string reason, TimeProvider clock, PlannedDot dot)
    {
        run.BeginHold(reason, clock, dot.Seq);
        _ledger.Audit(run.SessionId, "hold", "motion hold: " + reason);
        _log.LogWarning("Session {SessionId} holds: {Reason}", run.SessionId, reason);
        Changed();
    }

    /// <summary>Lifts the needle <c>tracking.holdClearanceMm</c> above where it is (within the envelope) and waits until it is there.</summary>
    private async Task<Vec3> RaiseAsync(GrblClient client, Vec3 position, CancellationToken ct)
    {
        var targetZ = Math.Min(position.Z + _profile.Tracking.HoldClearanceMm, _profile.TopZMm);
        if (_profile.Tracking.HoldClearanceMm <= 0 || targetZ <= position.Z) return position;
        var current = position;
        var up = _program.MoveZ(ref current, _program.Grid.Quantise(current with { Z = targetZ }).Z, _profile.PlungeFeedMmPerMin);
        await _safety.SendMotionLineAsync(client, up.Line, ct);
        await AckAsync(await _safety.SendMotionLineAsync(client, DotProgram.Sync.Line, ct), up.KinematicSeconds, ct);
        return current;
    }

    /// <summary>
    /// How far ahead to predict the head for a dot aimed now: the travel from where the gantry is, the
    /// verify round trip, and the plunge down to depth (machine time, on the tracking clock).
    /// </summary>
    private TimeSpan LookAhead(PlannedDot dot, Vec3 position)
    {
        if (!_aiming.Source.IsTracking) return TimeSpan.Zero;
        var (first, _) = _aiming.Aim(dot, PlungeLookAhead(dot));
        if (first is null) return TimeSpan.Zero;
        var travelSeconds = _program.Travel(position, first.HoverMm).Sum(l => l.KinematicSeconds);
        return TimeSpan.FromSeconds(travelSeconds) + VerifyRoundTrip + PlungeLookAhead(dot);
    }

    /// <summary>From the verify decision to the needle at depth: the plunge's own time plus the ledger write and the wire.</summary>
    private TimeSpan PlungeLookAhead(PlannedDot dot)
    {
        var hover = Vec3.Zero with { Z = _profile.HoverHeightMm + dot.DepthMm };
        var plunge = _program.Place(hover, Vec3.Zero, dot.DwellMs)[0];
        return TimeSpan.FromSeconds(plunge.KinematicSeconds) + DecisionToMotion;
    }

    /// <summary>Ledger fsync and the line on the wire before the plunge starts (measured ~5-15 ms here).</summary>
    private static readonly TimeSpan DecisionToMotion = TimeSpan.FromMilliseconds(10);

    /// <summary>Arrival sync and the status query of verify-before-plunge.</summary>
    private static readonly TimeSpan VerifyRoundTrip = TimeSpan.FromMilliseconds(30);

    /// <summary>Waits for the next tracked frame, at most 50 ms (a camera that stops sending frames shows up as a stale pose).</summary>
    private async Task WaitForPoseUpdateAsync(CancellationToken ct)
    {
        Task next;
        lock (_gate) next = _poseUpdated.Task;
        try
        {
            await next.WaitAsync(TimeSpan.FromMilliseconds(50), _time, ct);
        }
        catch (TimeoutException)
        {
            // No frame: look again (the stale gate decides).
        }
    }

    /// <summary>
    /// The tracking guard, on the tracking thread after every frame: while the needle is at or below
    /// its hover point (travel, verify, plunge, dwell, retract) a failing gate (a jerk, a lost board,
    /// a head too fast, a tracker stalled for twice the stale limit) stops the motion and retracts the
    /// needle before anything else.
    /// </summary>
    private void OnPoseUpdated(object? sender, EventArgs e)
    {
        TaskCompletionSource updated;
        lock (_gate)
        {
            updated = _poseUpdated;
            _poseUpdated = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        updated.TrySetResult();
        CheckGuard();
    }

    private void Watchdog()
    {
        CheckOperator();
        if (_aiming.Source.IsTracking) CheckGuard();
    }

    /// <summary>
    /// The dead-man during a run, from the watchdog and at once when a console hangs up or the pedal
    /// is released: when the run's console no longer supervises, the motion stops now — mid-dot the
    /// needle is pulled out (the dot is then in doubt) — and the run pauses for the operator. Pressing
    /// the pedal again or a console coming back never resumes it: resuming is a console's request.
    /// </summary>
    private void CheckOperator()
    {
        var run = Volatile.Read(ref _active);
        if (run is null || run.Stop is not StopKind.None) return;
        string reason;
        if (_patientSwitch is { IsEngaged: false }) reason = "paused by the patient (" + PatientPressed + ")";
        else if (_presence.AbsenceReason(run.ConsoleId) is { } absent) reason = "held: " + absent;
        else return;
        if (run.TryRequestRetract(reason) is { } done)
        {
            // Started on this thread: the hold byte goes on the wire before anything else here.
            var retract = _safety.HoldAndRetractAsync(reason, CancellationToken.None);
            _ = retract.ContinueWith(t => done.TrySetResult(t.IsCompletedSuccessfully ? t.Result : "retract failed: " + (t.Exception?.GetBaseException().Message ?? "cancelled")), TaskScheduler.Default);
        }
        run.Request(StopKind.Pause, reason);
        _log.LogWarning("Session {SessionId} holds for the operator: {Reason}", run.SessionId, reason);
        OperatorHoldStarted?.Invoke(run.SessionId, _time.GetTimestamp());
        Changed();
    }

    private const string PatientPressed = "the patient's hand switch is pressed (or its circuit is open)";

    /// <summary>Raised when the dead-man (heartbeat or pedal) or the patient's switch stopped a run (session id, TimeProvider timestamp of the decision).</summary>
    public event Action<string, long>? OperatorHoldStarted;

    /// <summary>
    /// The guard's check, after every frame and from a watchdog timer (a camera or tracker that stops
    /// delivering frames shows up only as a pose that keeps aging). Pause and abort keep it on (the
    /// current dot is still finished); an e-stop or a fault has its own stop sequence.
    /// </summary>
    private void CheckGuard()
    {
        var run = _active;
        if (run is null || !run.Armed || run.Stop is StopKind.EmergencyStop or StopKind.Fault) return;
        var reading = _aiming.Read();
        if (reading.HoldReason is null) return;
        // A frame that arrives a little late says nothing about the head, and the pose was checked
        // fresh right before the plunge: pulling a needle out mid-dot leaves the dot in doubt, so
        // mid-dot only a stalled tracker (twice the limit) counts. Jerks, a lost board and a head
        // too fast always do.
        if (reading.Quality >= _profile.MinPoseQuality && reading.HeadSpeedMmPerS <= _profile.MaxHeadSpeedMmPerS
            && reading.PoseAgeMs <= 2 * _profile.PoseMaxAgeMs) return;
        if (run.TryRequestRetract(reading.HoldReason) is not { } done) return;
        // Started on this thread: the hold byte goes on the wire before this returns to the tracker.
        var retract = _safety.HoldAndRetractAsync(reading.HoldReason, CancellationToken.None);
        _ = retract.ContinueWith(t => done.TrySetResult(t.IsCompletedSuccessfully ? t.Result : "retract failed: " + (t.Exception?.GetBaseException().Message ?? "cancelled")), TaskScheduler.Default);
    }

    /// <summary>
    /// After the guard's retract (the dot that was being placed, if any, is already in doubt): waits
    /// for the retract, sets the firmware up again (a flush resets its modal state and stops the
    /// needle drive) and leaves the hold to the next aim. Returns the gantry's position. Throws when
    /// the retract failed or the position was lost (the session faults and stops the machine).
    /// </summary>
    private async Task<Vec3> FinishMotionHoldAsync(GrblClient client, ActiveRun run, CancellationToken ct)
    {
        var reason = run.RetractReason;
        var error = run.RetractTask is { } task ? await task.WaitAsync(TimeSpan.FromSeconds(30), _time, ct) : "";
        run.ClearRetract();
        if (error.Length > 0) throw new GantryFaultException(GantryFaultKind.LinkLost, 0, "retract after a motion hold failed: " + error);
        if (!_gantry.IsHomed)
        {
            throw new GantryFaultException(GantryFaultKind.Alarm, 0, "the firmware lost its position while stopping for a motion hold: home the machine");
        }
        run.Raised = true;
        run.PendingHold = reason;
        if (run.Stop == StopKind.None) await SendPreambleAsync(client, ct);
        Changed();
        return _program.Grid.Quantise((await client.QueryStatusAsync(ct)).MachinePosition);
    }

    /// <summary>Marks the dot whose plunge the guard interrupted as in doubt (never redone automatically).</summary>
    private void MarkRetractedInDoubt(ActiveRun run, PlannedDot dot)
    {
        var note = "the needle was retracted mid-dot by a motion hold: " + run.RetractReason;
        _ledger.MarkInDoubt(run.SessionId, dot.Seq, note);
        _ledger.Audit(run.SessionId, "in-doubt", $"dot {dot.DotId} is in doubt: {note}");
        run.CountRetract();
    }

    /// <summary>
    /// Verify before plunge: the firmware says idle at the hover point, the operator is present, and
    /// re-aiming with the pose predicted for the moment the needle reaches depth lands within
    /// tolerance (verifyToleranceMm for a fixed head, tracking.aimToleranceMm for a tracked one). A
    /// moved target is corrected (a new travel) and verified again by the caller.
    /// </summary>
    private async Task<(AimedDot Aim, HoldCause? Hold, double CorrectionSeconds)> VerifyAsync(GrblClient client, ActiveRun run, AimedDot aim, CancellationToken ct)
    {
        if (_presence.AbsenceReason(run.ConsoleId) is { } absent) return (aim, new HoldCause(absent, false), 0);
        var status = await client.QueryStatusAsync(ct);
        if (!status.IsIdle) return (aim, new HoldCause($"gantry is {status.State} at dot {aim.Dot.DotId}, expected Idle", false), 0);
        var offMm = status.MachinePosition.DistanceTo(aim.HoverMm);
        if (offMm > PositionReportToleranceMm)
        {
            return (aim, new HoldCause(FormattableString.Invariant($"gantry is at {status.MachinePosition}, not at dot {aim.Dot.DotId}'s hover point {aim.HoverMm} ({offMm:0.000} mm off)"), false), 0);
        }
        // The decision to plunge is taken on the next frame (at most one frame period away): the
        // pose it predicts from is then as fresh as the camera allows.
        if (_aiming.Source.IsTracking) await WaitForPoseUpdateAsync(ct);
        var fresh = _aiming.AimOrHold(aim.Dot, PlungeLookAhead(aim.Dot));
        if (fresh.Aim is null) return (aim, new HoldCause(fresh.HoldReason!, fresh.TrackingHold), 0);
        var tolerance = _aiming.Source.IsTracking ? _profile.Tracking.AimToleranceMm : _profile.VerifyToleranceMm;
        _log.LogDebug("Verify {Dot}: the target predicted at depth is {OffMm:0.000} mm from the hover point", aim.Dot.DotId, fresh.Aim.HoverMm.DistanceTo(aim.HoverMm));
        if (fresh.Aim.HoverMm.DistanceTo(aim.HoverMm) <= tolerance && fresh.Aim.DepthMm.DistanceTo(aim.DepthMm) <= tolerance)
        {
            return (aim, null, 0);
        }
        var target = fresh.Aim;
        if (_aiming.Source.IsTracking)
        {
            // The head keeps moving while the correction runs: aim where it will be when the
            // corrected plunge reaches depth, so the next verify agrees instead of chasing it.
            var correction = TimeSpan.FromSeconds(_program.Travel(aim.HoverMm, target.HoverMm).Sum(l => l.KinematicSeconds));
            var ahead = _aiming.AimOrHold(aim.Dot, correction + VerifyRoundTrip + PlungeLookAhead(aim.Dot));
            if (ahead.Aim is null) return (aim, new HoldCause(ahead.HoldReason!, ahead.TrackingHold), 0);
            target = ahead.Aim;
        }
        var travel = _program.Travel(aim.HoverMm, target.HoverMm);
        foreach (var line in travel)
        {
            await _safety.SendMotionLineAsync(client, line.Line, ct);
        }
        var correctionSeconds = travel.Sum(l => l.KinematicSeconds);
        await AckAsync(await _safety.SendMotionLineAsync(client, DotProgram.Sync.Line, ct), correctionSeconds, ct);
        return (target, null, correctionSeconds);
    }

    /// <summary>
    /// Awaits a line's ok, bounded: the firmware owes it once the motion queued ahead of it
    /// (<paramref name="queuedMachineSeconds"/> of machine time) has run. A lost ok would otherwise
    /// hang the session while status reports keep saying the link is alive.
    /// </summary>
    private async Task AckAsync(SentLine sent, double queuedMachineSeconds, CancellationToken ct)
    {
        var bound = TimeSpan.FromSeconds((queuedMachineSeconds / _gantry.TimeScale * AckTimeFactor) + AckMarginSeconds);
        LineAck ack;
        try
        {
            ack = await sent.Ack.WaitAsync(bound, _time, ct);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException(FormattableString.Invariant($"the firmware did not acknowledge '{sent.Line}' within {bound.TotalSeconds:0.0} s"));
        }
        if (!ack.Ok) throw new LineRefusedException($"the firmware refused '{ack.Line}': error:{ack.ErrorCode} {ack.ErrorText}");
    }

    /// <summary>Status reports carry 3 decimals: a position may differ by their rounding, nothing more, mm.</summary>
    private const double PositionReportToleranceMm = 0.002;

    /// <summary>An ack may take this many times its motion's nominal duration…</summary>
    private const double AckTimeFactor = 2;

    /// <summary>…plus this (status round trips, host scheduling), seconds.</summary>
    private const double AckMarginSeconds = 2;

    private static string FaultText(Exception e) => e switch
    {
        GantryFaultException g when g.Kind == GantryFaultKind.Alarm => $"gantry alarm {g.Code}: {g.Message}",
        GantryFaultException g => $"gantry fault ({g.Kind}): {g.Message}",
        TimeoutException => e.Message,
        _ => e.Message,
    };

    private SessionRecord Find(string sessionId) =>
        _ledger.FindSession(sessionId) ?? throw new SessionException(SessionErrorKind.NotFound, $"no session '{sessionId}'");

    private SessionSnapshot Snapshot(string sessionId)
    {
        var record = Find(sessionId);
        var tally = _ledger.Tally(sessionId);
        var inDoubt = tally.InDoubt == 0 ? [] : _ledger.LoadDotsInState(sessionId, DotLedgerState.InDoubt, MaxInDoubtListed);
        double elapsed = record.ElapsedSeconds, kinematic = record.KinematicSeconds;
        ActiveRun? running = null;
        lock (_gate)
        {
            if (_active?.SessionId == sessionId)
            {
                running = _active;
                elapsed = _active.ElapsedSeconds(_time, _gantry.TimeScale);
                kinematic = _active.KinematicSeconds;
                if (record.Phase == SessionPhase.Running && _active.Stop is StopKind.Pause or StopKind.Abort)
                {
                    record = record with { Phase = SessionPhase.Pausing, Reason = _active.StopReason };
                }
            }
        }
        return new SessionSnapshot(record, tally, inDoubt, elapsed, kinematic, Tracking(running, record.Holds));
    }

    /// <summary>Tracking and the hold as the cycle sees them now; hold fields only for the running session.</summary>
    public TrackingView Tracking() => Tracking(null);

    private TrackingView Tracking(ActiveRun? run, HoldTally? stored = null)
    {
        var clock = _aiming.Source.Clock;
        var hold = run?.CurrentHold(clock);
        var (holds, lastReason, retracts) = run is not null ? (run.Holds, run.LastHoldReason, run.Retracts) : (0, "", 0);
        if (run is null && stored is not null)
        {
            (holds, lastReason, retracts) = (stored.Holds, stored.LastHoldReason, stored.Retracts);
        }
        return new TrackingView(_aiming.Source.Description, _aiming.Source.IsTracking, _aiming.Read(), hold is not null, hold?.Reason ?? "", hold?.Seconds ?? 0,
            holds, lastReason, retracts, _profile.PoseMaxAgeMs, _profile.MinPoseQuality, _profile.MaxHeadSpeedMmPerS);
    }

    private void Changed() => _snapshots.Changed();

    /// <summary>The proto-style upper-case name of a phase, for messages.</summary>
    public static string Name(SessionPhase phase) => phase switch
    {
        SessionPhase.EmergencyStopped => "EMERGENCY_STOPPED",
        _ => phase.ToString().ToUpperInvariant(),
    };

    public async ValueTask DisposeAsync()
    {
        await _watchdog.DisposeAsync();
        ActiveRun? run;
        lock (_gate) run = _active;
        if (run is not null)
        {
            run.Request(StopKind.Pause, "the controller is shutting down");
            try
            {
                await run.Task!.WaitAsync(TimeSpan.FromSeconds(30));
            }
            catch (TimeoutException)
            {
                _log.LogError("Session {SessionId} did not stop within 30 s of shutdown", run.SessionId);
            }
        }
        await _snapshots.DisposeAsync();
    }

    private enum StopKind
    {
        None,
        Pause,
        Abort,
        Fault,
        EmergencyStop,
    }

    /// <summary>The running session's clock and stop request.</summary>
    private sealed class ActiveRun(string sessionId, DateTimeOffset startedAt, double elapsedBefore, double kinematicBefore, long runningSince, HoldTally holdsBefore)
    {
        private readonly Lock _gate = new();
        private double _kinematic = kinematicBefore;

        public string SessionId { get; } = sessionId;
        public DateTimeOffset StartedAt { get; } = startedAt;

        /// <summary>TimeProvider timestamp at which the run's timers were last written to the ledger.</summary>
        public long TimersPersistedAt { get; set; }

        /// <summary>The console whose heartbeats keep this run going (it started or resumed it).</summary>
        public required string ConsoleId { get; init; }
        public CancellationTokenSource Cancellation { get; } = new();
        public Task? Task { get; set; }
        public StopKind Stop { get; private set; }
        public string StopReason { get; private set; } = "";

        public double KinematicSeconds { get { lock (_gate) return _kinematic; } }

        // Tracking guard: armed while the needle is at or below its hover point. Arming, disarming and
        // a retract request (with the task that carries it out) change together under _guardGate, so
        // the runner never sees a request without its task, and nothing is requested once disarmed.
        private readonly Lock _guardGate = new();
        private bool _armed;
        private TaskCompletionSource<string>? _retract;
        private string? _holdReason;
        private long _holdSince;
        private long _holdDotSeq = -1;
        private long _firstHoldForDot;

        public bool Armed { get { lock (_guardGate) return _armed; } }

        public void Arm()
        {
            lock (_guardGate) _armed = true;
        }

        public void Disarm()
        {
            lock (_guardGate) _armed = false;
        }

        /// <summary>True once the guard asked for a retract (until <see cref="ClearRetract"/>).</summary>
        public bool RetractRequested { get { lock (_guardGate) return _retract is not null; } }

        public string RetractReason { get; private set; } = "";

        /// <summary>The retract's outcome ("" when done, else what could not be done); null when none was requested.</summary>
        public Task<string>? RetractTask { get { lock (_guardGate) return _retract?.Task; } }

        /// <summary>
        /// Only the first failing frame while armed starts a retract: returns the completion the guard
        /// must complete with the retract's outcome, or null.
        /// </summary>
        public TaskCompletionSource<string>? TryRequestRetract(string reason)
        {
            lock (_guardGate)
            {
                if (!_armed || _retract is not null) return null;
                RetractReason = reason;
                _retract = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
                return _retract;
            }
        }

        /// <summary>Forgets a retract that has been awaited and dealt with.</summary>
        public void ClearRetract()
        {
            lock (_guardGate) _retract = null;
        }

        /// <summary>The needle is already clear of the skin (raised for a hold, or retracted).</summary>
        public bool Raised { get; set; }

        /// <summary>A hold found mid-cycle (verify), started by the next aim.</summary>
        public string? PendingHold { get; set; }

        public bool Holding { get { lock (_gate) return _holdReason is not null; } }

        public int Holds { get; private set; } = holdsBefore.Holds;

        public int Retracts { get; private set; } = holdsBefore.Retracts;

        public string LastHoldReason { get; private set; } = holdsBefore.LastHoldReason;

        public void CountRetract() => Retracts++;

        /// <summary>
        /// Starts a hold for dot <paramref name="dotSeq"/>. Repeated holds on the same dot (a target that
        /// keeps moving, verify finding a gate failing again) count from the first, so maxHoldSeconds
        /// cannot be dodged by short holds.
        /// </summary>
        public void BeginHold(string reason, TimeProvider clock, long dotSeq)
        {
            lock (_gate)
            {
                _holdReason = reason;
                if (dotSeq != _holdDotSeq)
                {
                    _holdDotSeq = dotSeq;
                    _firstHoldForDot = clock.GetTimestamp();
                }
                _holdSince = _firstHoldForDot;
                LastHoldReason = reason;
                Holds++;
            }
        }

        public void UpdateHold(string reason)
        {
            lock (_gate)
            {
                if (_holdReason is null) return;
                _holdReason = reason;
                LastHoldReason = reason;
            }
        }

        /// <summary>Ends the hold; returns how long it lasted, s.</summary>
        public double EndHold(TimeProvider clock)
        {
            lock (_gate)
            {
                var seconds = _holdReason is null ? 0 : clock.GetElapsedTime(_holdSince).TotalSeconds;
                _holdReason = null;
                return seconds;
            }
        }

        public double HoldSeconds(TimeProvider clock)
        {
            lock (_gate) return _holdReason is null ? 0 : clock.GetElapsedTime(_holdSince).TotalSeconds;
        }

        public (string Reason, double Seconds)? CurrentHold(TimeProvider clock)
        {
            lock (_gate) return _holdReason is null ? null : (_holdReason, clock.GetElapsedTime(_holdSince).TotalSeconds);
        }

        public void AddKinematic(double seconds)
        {
            lock (_gate) _kinematic += seconds;
        }

        /// <summary>Machine time: wall time while running × the simulator's time scale.</summary>
        public double ElapsedSeconds(TimeProvider time, double timeScale) => elapsedBefore + (time.GetElapsedTime(runningSince).TotalSeconds * timeScale);

        /// <summary>Asks the run to stop. Stronger requests win; e-stops and faults cancel at once.</summary>
        public void Request(StopKind kind, string reason)
        {
            lock (_gate)
            {
                if (kind <= Stop) return;
                Stop = kind;
                StopReason = reason;
            }
            if (kind is StopKind.EmergencyStop or StopKind.Fault)
            {
                try
                {
                    // Callbacks run on the thread pool: the caller (an e-stop, the gantry's reader)
                    // must not run the runner's clean-up (ledger writes) before its own work.
                    _ = Cancellation.CancelAsync();
                }
                catch (ObjectDisposedException)
                {
                    // The run already ended.
                }
            }
        }

        public (SessionPhase, string) Outcome() => Stop switch
        {
            StopKind.Pause => (SessionPhase.Paused, StopReason),
            StopKind.Abort => (SessionPhase.Aborted, StopReason),
            StopKind.EmergencyStop => (SessionPhase.EmergencyStopped, StopReason),
            _ => (SessionPhase.Faulted, StopReason),
        };
    }
}

/// <summary>The gantry is not where the lines it acknowledged should have left it.</summary>
public sealed class PlacementMismatchException(string message) : Exception(message);

/// <summary>The firmware answered error:N to a session line.</summary>
public sealed class LineRefusedException(string message) : Exception(message);
