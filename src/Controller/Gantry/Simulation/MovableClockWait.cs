namespace SmpRobot.Controller.Gantry.Simulation;

/// <summary>
/// One wait of a background loop on a <see cref="TimeProvider"/> whose clock another thread may move
/// while the loop is between reading it and starting its timer (a test's FakeTimeProvider, advanced by
/// the test's thread). Used by the simulator's executor and by the delay-ok answers.
/// </summary>
/// <remarks>
/// A loop reads the clock, computes how long to wait for its next due event, then starts
/// <c>Task.Delay(delay, time)</c>. A timer counts from the moment it is created, so if the clock moved in
/// between, the timer ends that much after the event was due; with a fake clock that only moves when a
/// test advances it, it may not end at all. The wait therefore returns at once when the clock moved
/// since <c>computedAtTimestamp</c>, and the loop computes again from the new time. "Moved" depends on
/// the clock: one that runs by itself (the system clock) always moves a little between two reads, and a
/// timer late by less than <see cref="ClockMovedToleranceMs"/> is harmless there; one that only moves
/// when told to (a fake clock) must not have moved at all, however little: a test that advances it by
/// exactly the last millisecond and then waits would otherwise wait for good.
/// </remarks>
internal static class MovableClockWait
{
    /// <summary>
    /// How far a clock that runs by itself may move between computing a delay and starting the timer
    /// before the wait returns at once: it always moves a little, and a timer late by less than this is
    /// harmless. A clock that does not run by itself has no tolerance.
    /// </summary>
    public const double ClockMovedToleranceMs = 1;

    /// <summary>Why <see cref="WaitForSignalOrDelayAsync"/> returned. Whatever it is, the caller looks again.</summary>
    public enum Outcome
    {
        /// <summary>The clock moved after the delay was computed: it is stale, compute it again.</summary>
        ClockMoved,
        /// <summary>The signal completed.</summary>
        Signalled,
        /// <summary>The delay elapsed.</summary>
        DelayElapsed,
        /// <summary>The token was cancelled.</summary>
        Cancelled,
    }

    /// <summary>
    /// Waits until <paramref name="signal"/> completes, <paramref name="delay"/> has elapsed on
    /// <paramref name="time"/>, or <paramref name="ct"/> is cancelled; returns at once (without waiting)
    /// when the clock has moved since <paramref name="computedAtTimestamp"/> (by more than
    /// <see cref="ClockMovedToleranceMs"/> for a clock that runs by itself). Never throws for cancellation.
    /// </summary>
    /// <param name="time">The clock the delay is measured on.</param>
    /// <param name="computedAtTimestamp"><paramref name="time"/>'s GetTimestamp() read before the delay was computed from it.</param>
    /// <param name="delay">How long to wait, &gt;= 0, or <see cref="Timeout.InfiniteTimeSpan"/> (no delay: only the signal or cancellation end the wait, and the clock is not checked).</param>
    /// <param name="signal">Ends the wait when it completes (in any state).</param>
    /// <param name="ct">Ends the wait when cancelled.</param>
    /// <returns>What ended the wait; every outcome means "look again".</returns>
    public static async Task<Outcome> WaitForSignalOrDelayAsync(TimeProvider time, long computedAtTimestamp, TimeSpan delay, Task signal, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(signal);
        if (ct.IsCancellationRequested) return Outcome.Cancelled;
        using var timerCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var timer = Task.Delay(delay, time, timerCts.Token);
        // Checked after the timer started: a move before this point is seen here, a later one moves the timer too.
        var moved = time.GetElapsedTime(computedAtTimestamp);
        if (delay != Timeout.InfiniteTimeSpan && moved > TimeSpan.Zero && (moved > TimeSpan.FromMilliseconds(ClockMovedToleranceMs) || !RunsByItself(time)))
        {
            await timerCts.CancelAsync().ConfigureAwait(false);
            return Outcome.ClockMoved;
        }
        var first = await Task.WhenAny(timer, signal).ConfigureAwait(false);
        await timerCts.CancelAsync().ConfigureAwait(false);
        if (first == signal) return Outcome.Signalled;
        return timer.IsCanceled ? Outcome.Cancelled : Outcome.DelayElapsed;
    }

    /// <summary>
    /// True for a clock that moves between two reads in a row (the system clock, or one scaled from it);
    /// false for one that only moves when told to (a test's FakeTimeProvider).
    /// </summary>
    private static bool RunsByItself(TimeProvider time) => time.GetTimestamp() != time.GetTimestamp();
}
