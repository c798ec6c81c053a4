namespace SmpRobot.Controller.Gantry;

/// <summary>What holds the machine: one of these at a time moves it.</summary>
public enum MachineUse
{
    /// <summary>A session's run (from its start or resume to its end).</summary>
    Session,

    /// <summary>A calibration procedure that moves the gantry (gantry calibration, drift check).</summary>
    Calibration,

    /// <summary>A program streamed in the firmware's check mode (<c>$C</c>): nothing may be streamed for real.</summary>
    Check,

    /// <summary>A manual jog.</summary>
    Jog,

    /// <summary>The homing cycle.</summary>
    Home,

    /// <summary>Probing the scalp and registering the head model to it.</summary>
    Surface,
}

/// <summary>Who holds the machine now.</summary>
/// <param name="Use">What kind of use.</param>
/// <param name="What">Its name for messages: "session s-…", "gantry calibration", "drift check", "check mode", "jog", "homing cycle".</param>
/// <param name="Busy">The refusal's text when it is not the usual one (see <see cref="BusyText"/>).</param>
public sealed record MachineHolder(MachineUse Use, string What, string? Busy = null)
{
    /// <summary>The one text that says the machine is taken, for every refusal: "session s-1 is running", "a gantry calibration is already running".</summary>
    public string BusyText => Busy ?? (Use == MachineUse.Session ? What + " is running" : $"a {What} is already running");
}

/// <summary>
/// The machine's single owner. Sessions, calibrations, check mode, jogs and homing each take the
/// lease for as long as they move the machine (or, for check mode, stream to it); a second taker is
/// refused with the holder's <see cref="MachineHolder.BusyText"/>. One compare-and-set decides, so two
/// takers starting at the same moment cannot both win. Thread-safe; emergency stops and stop
/// sequences never take it (they act ahead of every holder).
/// </summary>
/// <remarks>
/// At shutdown (<see cref="BeginShutdown"/>) no one may take it any more, its holder is told to stop through
/// <see cref="ShuttingDown"/> (a procedure stops as it does for its caller: motion stopped, nothing stored), and
/// the controller waits for it (<see cref="WaitUntilFreeAsync"/>) before it closes the link to the gantry and
/// releases the cameras and the store: a procedure is never left running on what was torn down under it.
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "its CancellationTokenSource has no timer and holds nothing to release; holders read its token until the controller's very end, so it is never disposed")]
public sealed class MachineLease
{
    /// <summary>The holder a taker is refused with once the controller is shutting down.</summary>
    public static MachineHolder ShutdownHolder { get; } = new(MachineUse.Session, "the controller", "the controller is shutting down");

    private readonly CancellationTokenSource _shuttingDown = new();
    private MachineHolder? _holder;
    private TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Who holds the machine now, or null when it is free.</summary>
    public MachineHolder? Holder => Volatile.Read(ref _holder);

    /// <summary>Cancelled once the controller begins to shut down (<see cref="BeginShutdown"/>): the holder stops what it does.</summary>
    public CancellationToken ShuttingDown => _shuttingDown.Token;

    /// <summary>"stopped by its caller", or "stopped because the controller is shutting down": why a holder's procedure was stopped, for its audit and log.</summary>
    public string StopCause => _shuttingDown.IsCancellationRequested ? "stopped because the controller is shutting down" : "stopped by its caller";

    /// <summary>From now on every taker is refused ("the controller is shutting down") and the holder's <see cref="ShuttingDown"/> is cancelled. Idempotent.</summary>
    public void BeginShutdown() => _shuttingDown.Cancel();

    /// <summary>
    /// <paramref name="callerToken"/> joined with <see cref="ShuttingDown"/>: a holder's procedure runs on it, so that
    /// a shutdown stops it as its caller's Ctrl+C would. The caller disposes it.
    /// </summary>
    public CancellationTokenSource StopsAtShutdown(CancellationToken callerToken) => CancellationTokenSource.CreateLinkedTokenSource(callerToken, _shuttingDown.Token);

    /// <summary>
    /// Takes the lease for <paramref name="use"/> until the returned scope is disposed (disposing twice
    /// releases once). Returns null, with <paramref name="holder"/> set to who has it, when it is taken
    /// (<see cref="ShutdownHolder"/> once the controller is shutting down).
    /// </summary>
    public IDisposable? TryAcquire(MachineUse use, string what, out MachineHolder? holder)
    {
        if (_shuttingDown.IsCancellationRequested)
        {
            holder = ShutdownHolder;
            return null;
        }
        var mine = new MachineHolder(use, what);
        holder = Interlocked.CompareExchange(ref _holder, mine, null);
        return holder is null ? new Scope(this, mine) : null;
    }

    /// <summary>Takes the lease or throws <see cref="RefusedException"/> (FailedPrecondition): "cannot <paramref name="action"/>: …".</summary>
    /// <param name="use">What takes it.</param>
    /// <param name="what">Its name for other takers' messages (see <see cref="MachineHolder.What"/>).</param>
    /// <param name="action">What the caller wanted to do, for the refusal: "jog", "run the drift check".</param>
    public IDisposable Acquire(MachineUse use, string what, string action) =>
        TryAcquire(use, what, out var holder) ?? throw new RefusedException(RefusalKind.FailedPrecondition, $"cannot {action}: {holder!.BusyText}");

    /// <summary>
    /// Completes true once no one holds the machine (at once when it is free), false when <paramref name="timeout"/>
    /// (on <paramref name="time"/>'s clock) passes first.
    /// </summary>
    public async Task<bool> WaitUntilFreeAsync(TimeSpan timeout, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        var started = time.GetTimestamp();
        while (true)
        {
            // The signal first, then the holder: a release between the two is seen as a free machine.
            var released = Volatile.Read(ref _released).Task;
            if (Holder is null) return true;
            var left = timeout - time.GetElapsedTime(started);
            if (left <= TimeSpan.Zero) return false;
            try
            {
                await released.WaitAsync(left, time).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                return Holder is null;
            }
        }
    }

    private void Release(MachineHolder mine)
    {
        if (Interlocked.CompareExchange(ref _holder, null, mine) != mine) return;
        Interlocked.Exchange(ref _released, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    private sealed class Scope(MachineLease lease, MachineHolder mine) : IDisposable
    {
        public void Dispose() => lease.Release(mine);
    }
}
