using System.Threading.Channels;
using SmpRobot.Controller.Storage;

namespace SmpRobot.Controller.Sessions;

/// <summary>What a run is asked to do; a stronger kind wins over a weaker one (the enum's order).</summary>
public enum RunCommandKind
{
    /// <summary>Finish the current dot, then pause with the needle at hover.</summary>
    Pause = 1,

    /// <summary>Finish the current dot, then end the session for good.</summary>
    Abort = 2,

    /// <summary>The gantry faulted: stop now (the run's token is cancelled) and stop the machine safely.</summary>
    Fault = 3,

    /// <summary>The emergency stop latched: stop now; the supervisor's stop sequence has the machine.</summary>
    EmergencyStop = 4,
}

/// <summary>A request to the running session.</summary>
public sealed record RunCommand(RunCommandKind Kind, string Reason)
{
    /// <summary>The phase the run ends in when this is the command it obeyed.</summary>
    public SessionPhase EndPhase => Kind switch
    {
        RunCommandKind.Pause => SessionPhase.Paused,
        RunCommandKind.Abort => SessionPhase.Aborted,
        RunCommandKind.EmergencyStop => SessionPhase.EmergencyStopped,
        _ => SessionPhase.Faulted,
    };
}

/// <summary>
/// The run's inbox. Anyone posts (the lifecycle's pause and abort, the dead-man, the e-stop path, the
/// gantry's reader loop); the runner is its one reader and takes the strongest command at each step
/// of the cycle. A fault or an e-stop also cancels the run's token at once (the runner may be waiting
/// for an ack), asynchronously, so the poster never runs the runner's clean-up on its own thread.
/// </summary>
public sealed class RunCommands
{
    private readonly Channel<RunCommand> _inbox = Channel.CreateUnbounded<RunCommand>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Lock _postedGate = new();
    private RunCommand? _posted;
    private RunCommand? _taken;

    /// <summary>Cancelled by a fault or an e-stop.</summary>
    public CancellationTokenSource Cancellation { get; } = new();

    // Like Cancellation, never disposed: watchers may still read its token after the run ended.
    private CancellationTokenSource AnyPostedSource { get; } = new();

    /// <summary>
    /// Cancelled once any command is posted (a pause too): what must stop at once for any of them (a surface re-check's
    /// probe on the skin) watches it; the placing cycle looks at the commands between its steps instead.
    /// </summary>
    public CancellationToken AnyPosted => AnyPostedSource.Token;

    /// <summary>
    /// Posts a command. Returns false (and posts nothing) when an equal or stronger one was posted
    /// before: the first reason of the strongest request is the one told.
    /// </summary>
    public bool Post(RunCommandKind kind, string reason)
    {
        var command = new RunCommand(kind, reason);
        lock (_postedGate)
        {
            if (_posted is not null && _posted.Kind >= kind) return false;
            _posted = command;
        }
        _inbox.Writer.TryWrite(command);
        try
        {
            // On the thread pool, as below: the poster never runs the watcher's stop on its own thread.
            _ = AnyPostedSource.CancelAsync();
        }
        catch (ObjectDisposedException)
        {
            // The run already ended.
        }
        if (kind is RunCommandKind.EmergencyStop or RunCommandKind.Fault)
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
        return true;
    }

    /// <summary>The strongest command posted so far (any thread: for snapshots and the lifecycle); null when none.</summary>
    public RunCommand? Posted
    {
        get { lock (_postedGate) return _posted; }
    }

    /// <summary>The runner's view: reads the inbox and returns the strongest command taken so far, or null. Runner only.</summary>
    public RunCommand? Take()
    {
        while (_inbox.Reader.TryRead(out var command))
        {
            if (_taken is null || command.Kind > _taken.Kind) _taken = command;
        }
        return _taken;
    }

    /// <summary>True once the runner has a command to obey. Runner only.</summary>
    public bool StopRequested => Take() is not null;
}

/// <summary>
/// One run of a session (from a start or resume to its end): its console, its clocks, its inbox, its
/// motion hold and its tracking guard. Made by the lifecycle, driven by <see cref="SessionRunner"/>.
/// </summary>
public sealed class SessionRun(string sessionId, DateTimeOffset startedAt, double elapsedBefore, double kinematicBefore, long runningSince, MotionHold hold, TrackingGuard guard)
{
    private readonly Lock _clockGate = new();
    private double _kinematic = kinematicBefore;

    public string SessionId { get; } = sessionId;

    /// <summary>When the session first started (kept across resumes).</summary>
    public DateTimeOffset StartedAt { get; } = startedAt;

    /// <summary>The console whose heartbeats keep this run going (it started or resumed it).</summary>
    public required string ConsoleId { get; init; }

    /// <summary>The session plan's head positions (patches) and which dot is in which; none for most plans.</summary>
    public Plans.PlanPatches Patches { get; init; } = Plans.PlanPatches.None;

    /// <summary>Pause, abort, fault and e-stop requests.</summary>
    public RunCommands Commands { get; } = new();

    /// <summary>The automatic motion hold and this session's hold tally.</summary>
    public MotionHold Hold { get; } = hold;

    /// <summary>The tracking guard and the retract it may have asked for.</summary>
    public TrackingGuard Guard { get; } = guard;

    /// <summary>
    /// The record of the run's last commanded dot (Placed, or in doubt), and the withdrawal of an intent whose commit was
    /// cut off (<see cref="DotCycle.IntentToWithdraw"/>), that the record store could not take when the run ended; written,
    /// before the run's end, once the store answers again (<see cref="SessionManager"/>). Their state changes are idempotent, so a
    /// write cut off part-way is run whole again. Null when none.
    /// </summary>
    public Action? UnrecordedDot { get; set; }

    /// <summary>
    /// True while the runner's surface re-check probes: the probe's own alarms (ALARM:4, ALARM:5) end that probe with
    /// its refusal (the run holds), not the run as a gantry fault.
    /// </summary>
    public bool ProbeUnderWay
    {
        get => Volatile.Read(ref _probeUnderWay);
        set => Volatile.Write(ref _probeUnderWay, value);
    }

    private bool _probeUnderWay;

    /// <summary>The runner's task (set once it starts).</summary>
    public Task? Task { get; set; }

    /// <summary>TimeProvider timestamp at which the run's timers were last written to the ledger.</summary>
    public long TimersPersistedAt { get; set; }

    /// <summary>Pure motion and dwell time of this session so far, s.</summary>
    public double KinematicSeconds
    {
        get { lock (_clockGate) return _kinematic; }
    }

    public void AddKinematic(double seconds)
    {
        lock (_clockGate) _kinematic += seconds;
    }

    /// <summary>Machine time: wall time while running × the simulator's time scale, added to the time before this run.</summary>
    public double ElapsedSeconds(TimeProvider time, double timeScale)
    {
        ArgumentNullException.ThrowIfNull(time);
        return elapsedBefore + (time.GetElapsedTime(runningSince).TotalSeconds * timeScale);
    }
}
