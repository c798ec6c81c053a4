using SmpRobot.Controller.Safety;
using SmpRobot.Machine;

namespace SmpRobot.Controller.Sessions;

/// <summary>
/// The tracking guard of one run: armed while the needle is at or below its hover point (travel,
/// verify, plunge, dwell, retract). On the tracking thread after every frame, and from the watchdog
/// (a camera that stops sending frames only shows as a pose that keeps aging), a failing gate stops
/// the motion and retracts the needle before anything else: the feed-hold byte is written
/// synchronously on the caller's thread, the one exception to the runner owning every decision.
/// The dead-man asks it for the same retract. Only the first request while armed starts one.
/// </summary>
public sealed class TrackingGuard(Aiming aiming, MachineProfile profile, SafetySupervisor safety)
{
    // Arming, disarming and a retract request (with the task that carries it out) change together
    // under this lock, so the runner never sees a request without its task, and nothing is
    // requested once disarmed.
    private readonly Lock _gate = new();
    private bool _armed;
    private TaskCompletionSource<string>? _retract;

    public bool Armed
    {
        get { lock (_gate) return _armed; }
    }

    public void Arm()
    {
        lock (_gate) _armed = true;
    }

    public void Disarm()
    {
        lock (_gate) _armed = false;
    }

    /// <summary>True once a retract was asked for (until <see cref="ClearRetract"/>).</summary>
    public bool RetractRequested
    {
        get { lock (_gate) return _retract is not null; }
    }

    /// <summary>Why the last retract was asked for.</summary>
    public string RetractReason { get; private set; } = "";

    /// <summary>The retract's outcome ("" when done, else what could not be done); null when none was requested.</summary>
    public Task<string>? RetractTask
    {
        get { lock (_gate) return _retract?.Task; }
    }

    /// <summary>Forgets a retract that has been awaited and dealt with.</summary>
    public void ClearRetract()
    {
        lock (_gate) _retract = null;
    }

    /// <summary>
    /// The guard's look at the freshest pose. Pause and abort keep it on (the current dot is still
    /// finished); an e-stop or a fault (<paramref name="posted"/>) has its own stop sequence.
    /// </summary>
    public void CheckPose(RunCommand? posted)
    {
        if (!Armed || posted?.Kind is RunCommandKind.EmergencyStop or RunCommandKind.Fault) return;
        var reading = aiming.Read();
        if (reading.HoldReason is null) return;
        // A frame that arrives a little late says nothing about the head, and the pose was checked
        // fresh right before the plunge: pulling a needle out mid-dot leaves the dot in doubt, so
        // mid-dot only a stalled tracker (twice the limit) counts. Jerks, a lost board and a head
        // too fast always do.
        if (reading.Quality >= profile.MinPoseQuality && reading.HeadSpeedMmPerS <= profile.MaxHeadSpeedMmPerS
            && reading.PoseAgeMs <= 2 * profile.PoseMaxAgeMs) return;
        TryRetract(reading.HoldReason);
    }

    /// <summary>
    /// Stops the motion and pulls the needle straight up now, when armed and no retract is under way:
    /// the hold byte goes on the wire on this thread before this returns. Returns whether it started one.
    /// </summary>
    public bool TryRetract(string reason)
    {
        TaskCompletionSource<string> done;
        lock (_gate)
        {
            if (!_armed || _retract is not null) return false;
            RetractReason = reason;
            done = _retract = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        var retract = safety.HoldAndRetractAsync(reason, CancellationToken.None);
        _ = retract.ContinueWith(t => done.TrySetResult(t.IsCompletedSuccessfully ? t.Result : "retract failed: " + (t.Exception?.GetBaseException().Message ?? "cancelled")), TaskScheduler.Default);
        return true;
    }
}

/// <summary>Tracked frames as a signal the runner can wait for (at most a bound: a camera that stops sending frames shows up as a stale pose).</summary>
public sealed class PoseUpdates(TimeProvider timeProvider)
{
    private readonly Lock _gate = new();
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>How long <see cref="WaitAsync"/> waits for a frame before the caller looks again.</summary>
    public static readonly TimeSpan MaxWait = TimeSpan.FromMilliseconds(50);

    /// <summary>A frame was tracked (tracking thread).</summary>
    public void Signal()
    {
        TaskCompletionSource updated;
        lock (_gate)
        {
            updated = _next;
            _next = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        updated.TrySetResult();
    }

    /// <summary>Waits for the next tracked frame, at most <see cref="MaxWait"/>.</summary>
    public async Task WaitAsync(CancellationToken cancellationToken)
    {
        Task next;
        lock (_gate) next = _next.Task;
        try
        {
            await next.WaitAsync(MaxWait, timeProvider, cancellationToken);
        }
        catch (TimeoutException)
        {
            // No frame: look again (the stale gate decides).
        }
    }
}
