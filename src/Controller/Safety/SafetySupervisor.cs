using Microsoft.Extensions.Logging;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Machine;

namespace SmpRobot.Controller.Safety;

/// <summary>State of the emergency-stop latch and of the last stop sequence.</summary>
public sealed record EmergencyStopState(
    bool Latched,
    string Source,
    string Reason,
    DateTimeOffset? At,
    IReadOnlyList<string> StopSteps,
    string StopError,
    long ArrivedTimestamp,
    long FeedHoldWrittenTimestamp);

/// <summary>A motion line was refused because the machine is stopping or the e-stop is latched.</summary>
public sealed class MotionRefusedException(string message) : Exception(message);

/// <summary>
/// The safety supervisor: the e-stop latch (ISO 13850 style: latched until a deliberate reset, and
/// the reset never restarts motion), the stop sequence on the wire, and the gate every motion line
/// of a session passes through so nothing is sent once a stop has begun.
/// </summary>
public sealed partial class SafetySupervisor : IDisposable
{
    private static readonly TimeSpan HoldSettleTimeout = TimeSpan.FromSeconds(3);
    private readonly GantryConnection _gantry;
    private readonly MachineProfile _profile;
    private readonly LedgerStore _ledger;
    // Cancelled when the controller shuts down: a background stop must not outlive the store it writes to.
    private readonly CancellationTokenSource _shutdown = new();
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _sequenceLock = new(1, 1);
    private int _latched; // 1 = latched; set before the stop bytes so no reader sees the hold without the latch
    private int _stopsInProgress;
    private readonly Func<bool> _mayWriteMotion;
    private EmergencyStopState _state = new(false, "", "", null, [], "", 0, 0);

    public SafetySupervisor(GantryConnection gantry, MachineProfile profile, LedgerStore ledger, TimeProvider timeProvider, ILogger<SafetySupervisor> log)
    {
        _gantry = gantry;
        _profile = profile;
        _ledger = ledger;
        _time = timeProvider;
        _log = log;
        _mayWriteMotion = () => !IsLatched && Volatile.Read(ref _stopsInProgress) == 0;
    }

    /// <summary>True from the first instant of an e-stop until an explicit reset.</summary>
    public bool IsLatched => Volatile.Read(ref _latched) == 1;

    /// <summary>Snapshot of the latch and the last stop sequence.</summary>
    public EmergencyStopState State { get { lock (_gate) return _state; } }

    /// <summary>
    /// Raised synchronously right after the stop bytes are on the wire, so the session runner stops
    /// queueing before the queue is flushed. Handlers must be quick and must not throw.
    /// </summary>
    public event EventHandler<EmergencyStopEventArgs>? EmergencyStopLatched;

    /// <summary>
    /// Raised by every emergency-stop request right after its stop bytes were written (arguments: the
    /// request's arrival and the feed-hold byte's TimeProvider timestamps; 0 when not written), for
    /// latency figures. Handlers must be quick and must not throw.
    /// </summary>
    public event EventHandler<StopBytesWrittenEventArgs>? StopBytesWritten;

    /// <summary>
    /// Raised when a stop sequence (flush, needle off, retract) ended, with the steps it did and its
    /// error ("" when complete), before the request that ran it is answered. Handlers must be quick
    /// and must not throw.
    /// </summary>
    public event EventHandler<StopSequenceFinishedEventArgs>? StopSequenceFinished;

    /// <summary>
    /// Emergency stop. Feed hold and safety door (needle drive off) go on the wire first, ahead of
    /// anything queued; then the latch is announced, the firmware queue flushed once motion has
    /// stopped, and the needle retracted straight up. Idempotent for the latch (the first source and
    /// reason are kept); the stop sequence itself runs again on every request.
    /// </summary>
    /// <param name="arrivedTimestamp">TimeProvider timestamp at which the request arrived (for latency figures).</param>
    public async Task<EmergencyStopState> EmergencyStopAsync(string source, string reason, long arrivedTimestamp, CancellationToken cancellationToken)
    {
        var client = _gantry.Client;
        long holdWritten = 0;
        string linkError = "";
        // One atomic flag first (nanoseconds), so whoever sees the hold also sees the latch; then the
        // stop bytes, before any other bookkeeping: nothing may delay them.
        var firstLatch = Interlocked.Exchange(ref _latched, 1) == 0;
        try
        {
            if (client is { IsConnected: true })
            {
                await client.SendRealtimeAsync(GrblRealtime.FeedHold, CancellationToken.None);
                holdWritten = _time.GetTimestamp();
                await client.SendRealtimeAsync(GrblRealtime.SafetyDoor, CancellationToken.None);
            }
            else
            {
                linkError = $"gantry {_gantry.Description} is not connected: software cannot stop it; use the hard-wired e-stop";
            }
        }
        catch (Exception e) when (e is IOException or GantryFaultException or ObjectDisposedException)
        {
            linkError = $"could not write the stop bytes ({e.Message}): use the hard-wired e-stop";
        }
        StopBytesWritten?.Invoke(this, new StopBytesWrittenEventArgs(arrivedTimestamp, holdWritten));
        // A motion hold's stop sequence in progress gives way at once (it holds the sequence lock).
        var interrupted = Interlocked.Exchange(ref _motionHoldInterrupt, new CancellationTokenSource());
        _ = interrupted.CancelAsync();
        // An e-stop sequence under way starts over (these bytes hold the firmware again); this request joins it.
        var restarted = Interlocked.Exchange(ref _sequenceRestart, new CancellationTokenSource());
        _ = restarted.CancelAsync();

        var latchedAt = _time.GetUtcNow();
        lock (_gate)
        {
            if (firstLatch)
            {
                _state = new EmergencyStopState(true, source, reason, latchedAt,
                    linkError.Length == 0 ? ["feed-hold", "needle-off"] : [], linkError, arrivedTimestamp, holdWritten);
            }
        }
        if (firstLatch)
        {
            try
            {
                // Listeners only take note (the runner is cancelled asynchronously): nothing here may wait.
                EmergencyStopLatched?.Invoke(this, new EmergencyStopEventArgs(State));
            }
#pragma warning disable CA1031 // the e-stop path must never throw: a listener's failure is logged
            catch (Exception e)
#pragma warning restore CA1031
            {
                Log.ListenerFailed(_log, e);
            }
        }
        // A repeated e-stop runs the whole sequence again: its stop bytes put the firmware in a hold
        // that only the flush clears, and the operator pressing again means "make sure".
        var stopError = linkError;
        if (linkError.Length == 0)
        {
            var (steps, error) = await JoinOrStartStopAsync(cancellationToken);
            lock (_gate)
            {
                _state = _state with { StopSteps = firstLatch ? [.. _state.StopSteps, .. steps] : ["feed-hold", "needle-off", .. steps], StopError = error };
            }
            stopError = error;
        }
        // Logged and recorded once the machine is stopped: the log's formatting and the ledger's lock
        // and fsync (shared with snapshots and the session runner) must not delay the stop.
        if (firstLatch)
        {
            Log.EmergencyStop(_log, source, reason);
            Record("estop", $"emergency stop from {source}: {reason}", latchedAt);
        }
        if (stopError.Length > 0) Record("estop", IncompleteStopPrefix + stopError);
        return State;
    }

    /// <summary>How the audit row (kind "estop") that says an e-stop's stop sequence did not complete begins: a note on that e-stop, not another one.</summary>
    public const string IncompleteStopPrefix = "stop sequence incomplete: ";

    /// <summary>
    /// Records a stop or a reset in the audit log, best effort: the stop has happened whatever the store says, so a
    /// record store that cannot be reached (a PostgreSQL server restarting) is logged as an error, and the stop is never
    /// reported as failed because of it.
    /// </summary>
    private void Record(string kind, string message, DateTimeOffset? at = null)
    {
        try
        {
            _ledger.Audit(null, kind, message, at);
        }
#pragma warning disable CA1031 // the stop has happened: whatever the store says is logged, never the stop's failure
        catch (Exception e)
#pragma warning restore CA1031
        {
            Log.NotRecorded(_log, kind, message, e.Message);
        }
    }

    /// <summary>The e-stop sequence under way (which started over for this request's bytes), or a new one.</summary>
    private async Task<(List<string> Steps, string Error)> JoinOrStartStopAsync(CancellationToken cancellationToken)
    {
        TaskCompletionSource<(List<string>, string)>? mine = null;
        Task<(List<string> Steps, string Error)> sequence;
        lock (_gate)
        {
            if (_estopSequence is { IsCompleted: false } running)
            {
                sequence = running;
            }
            else
            {
                mine = new TaskCompletionSource<(List<string>, string)>(TaskCreationOptions.RunContinuationsAsynchronously);
                _estopSequence = sequence = mine.Task;
            }
        }
        if (mine is not null)
        {
            try
            {
                mine.SetResult(await FinishStopAsync(cancellationToken));
            }
#pragma warning disable CA1031 // not swallowed: handed to the sequence's task, whose await below rethrows it to this caller and to every joiner
            catch (Exception e)
#pragma warning restore CA1031
            {
                mine.SetException(e);
            }
        }
        var (steps, error) = await sequence;
        return ([.. steps], error);
    }

    /// <summary>
    /// A controlled stop after a fault (no latch): feed hold, needle off, flush, retract. Used when a
    /// session faults mid-dot so the needle never stays in the skin. A firmware that went silent
    /// (a stall, not a closed link) may wake up and run what it still has queued, with the needle
    /// drive on: the stop bytes are repeated until it answers, for <see cref="RecontactWindow"/>,
    /// then in the background for <see cref="BackgroundRecontactWindow"/>. Returns what it could not do.
    /// </summary>
    public async Task<string> SafeStopAfterFaultAsync(CancellationToken cancellationToken)
    {
        var client = _gantry.Client;
        if (client is null)
        {
            return $"gantry {_gantry.Description} is not connected: the needle may still be down; use the hard-wired e-stop";
        }
        Interlocked.Increment(ref _stopsInProgress);
        try
        {
            var error = await StopWhenAnsweringAsync(client, RecontactWindow, cancellationToken);
            if (error is null) return "";
            if (error.Length > 0 && !_closedLink)
            {
                // Keep trying without holding up the session's end: the operator must act now.
                _ = Task.Run(() => KeepTryingToStopAsync(client), CancellationToken.None);
                return error + "; still trying to reach the firmware to stop it";
            }
            return error;
        }
        finally
        {
            Interlocked.Decrement(ref _stopsInProgress);
        }
    }

    /// <summary>
    /// A motion hold that must get the needle out now (tracking failed while the needle was at or
    /// below its hover point): feed hold and safety door (needle drive off) go on the wire first,
    /// then, once motion has stopped, the queue is flushed and the needle retracted straight up.
    /// No latch: the session decides what happens next. Returns what could not be done ("" when done).
    /// The motion gate stays closed until the sequence ends, so nothing queued behind it can run.
    /// </summary>
    public async Task<string> HoldAndRetractAsync(string reason, CancellationToken cancellationToken)
    {
        var client = _gantry.Client;
        if (client is not { IsConnected: true })
        {
            return $"gantry {_gantry.Description} is not connected: the needle may still be down; use the hard-wired e-stop";
        }
        Interlocked.Increment(ref _stopsInProgress);
        try
        {
            await client.SendRealtimeAsync(GrblRealtime.FeedHold, CancellationToken.None);
            Volatile.Write(ref _lastMotionHoldTimestamp, _time.GetTimestamp());
            await client.SendRealtimeAsync(GrblRealtime.SafetyDoor, CancellationToken.None);
            Log.MotionHold(_log, reason);
            // An emergency stop takes over at once: it must not wait behind this sequence.
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, Volatile.Read(ref _motionHoldInterrupt).Token);
            var (_, error) = await FinishStopAsync(linked.Token);
            return error;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return "";  // an emergency stop took over: its own sequence flushes and retracts
        }
        catch (Exception e) when (e is IOException or GantryFaultException or ObjectDisposedException)
        {
            return $"could not write the hold bytes ({e.Message}): use the hard-wired e-stop";
        }
        finally
        {
            Interlocked.Decrement(ref _stopsInProgress);
        }
    }

    private long _lastMotionHoldTimestamp;

    // Cancelled (and replaced) by an emergency stop so that a motion hold's stop sequence in progress gives way to it at once.
    private CancellationTokenSource _motionHoldInterrupt = new();

    // Cancelled (and replaced) by every emergency stop's bytes: a stop sequence under way starts over.
    private CancellationTokenSource _sequenceRestart = new();

    // The e-stop sequence under way or last run (guarded by _gate); a second e-stop joins it.
    private Task<(List<string> Steps, string Error)>? _estopSequence;

    /// <summary>TimeProvider timestamp at which the last motion hold's feed-hold byte was written; 0 when none yet.</summary>
    public long LastMotionHoldTimestamp => Volatile.Read(ref _lastMotionHoldTimestamp);

    /// <summary>How long a post-fault stop waits inline for a silent firmware to answer.</summary>
    public static readonly TimeSpan RecontactWindow = TimeSpan.FromSeconds(5);

    /// <summary>How long the supervisor keeps trying in the background after that.</summary>
    public static readonly TimeSpan BackgroundRecontactWindow = TimeSpan.FromMinutes(10);

    private volatile bool _closedLink;

    /// <summary>
    /// Sends feed hold and safety door, and once a status report proves the firmware is listening,
    /// finishes the stop. Null when done; otherwise the reason it could not be done.
    /// </summary>
    private async Task<string?> StopWhenAnsweringAsync(GrblClient client, TimeSpan window, CancellationToken cancellationToken)
    {
        var start = _time.GetTimestamp();
        _closedLink = false;
        while (true)
        {
            try
            {
                await client.SendRealtimeAsync(GrblRealtime.FeedHold, CancellationToken.None);
                await client.SendRealtimeAsync(GrblRealtime.SafetyDoor, CancellationToken.None);
                await client.QueryStatusAsync(cancellationToken); // bounded by the client's status timeout
                break;
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or GantryFaultException { Kind: GantryFaultKind.Closed })
            {
                _closedLink = true;
                return $"the link to the gantry is closed ({e.Message}): the needle may still be down; use the hard-wired e-stop";
            }
            catch (GantryFaultException e)
            {
                if (_time.GetElapsedTime(start) > window)
                {
                    return $"the gantry does not answer ({e.Message}): the needle may still be down; use the hard-wired e-stop";
                }
            }
        }
        var (_, error) = await FinishStopAsync(cancellationToken);
        return error.Length == 0 ? null : error;
    }

    private async Task KeepTryingToStopAsync(GrblClient client)
    {
        Interlocked.Increment(ref _stopsInProgress);
        try
        {
            var error = await StopWhenAnsweringAsync(client, BackgroundRecontactWindow, _shutdown.Token);
            if (_shutdown.IsCancellationRequested)
            {
                Log.BackgroundStopAbandoned(_log, error ?? "stopped");
                return;
            }

            Record("fault-stop", error is null ? "the firmware answered again and was stopped: feed hold, needle off, queue flushed, retracted" : "gave up reaching the firmware: " + error);
            Log.BackgroundStopDone(_log, error ?? "stopped");
        }
        catch (Exception e) when (_shutdown.IsCancellationRequested && e is OperationCanceledException or ObjectDisposedException)
        {
            Log.BackgroundStopInterrupted(_log, e.Message);
        }
#pragma warning disable CA1031 // runs unobserved in the background after a fault: its failure is logged
        catch (Exception e)
#pragma warning restore CA1031
        {
            Log.BackgroundStopFailed(_log, e);
        }
        finally
        {
            Interlocked.Decrement(ref _stopsInProgress);
        }
    }

    /// <summary>
    /// Clears the latch. Never restarts motion: sessions stay stopped until resumed explicitly.
    /// Refused while the stop sequence is still running.
    /// </summary>
    public EmergencyStopState Reset(string source)
    {
        lock (_gate)
        {
            if (!IsLatched) return _state;
            if (Volatile.Read(ref _stopsInProgress) > 0)
            {
                throw new InvalidOperationException("the stop sequence is still running; reset again in a moment");
            }
            Volatile.Write(ref _latched, 0);
            _state = _state with { Latched = false };
        }
        Log.Reset(_log, source);
        Record("estop-reset", $"emergency stop reset by {source}");
        return State;
    }

    /// <summary>
    /// Sends a session's motion line through the gate: refused once a stop has begun. Lines that
    /// slip through while a stop starts are flushed by the stop sequence, which waits for them.
    /// </summary>
    public async ValueTask<SentLine> SendMotionLineAsync(GrblClient client, string line, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        ThrowIfStopping();
        try
        {
            // Looked at again by the client at the last moment before the line's bytes are written
            // (under its write lock): a line that waited for buffer room while a stop began is
            // refused, and one written before the latch is on the wire ahead of the stop bytes, so
            // the flush removes it.
            return await client.SendLineAsync(line, cancellationToken, _mayWriteMotion);
        }
        catch (LineWriteRefusedException)
        {
            ThrowIfStopping();
            throw new MotionRefusedException("a stop is in progress");
        }
    }

    private void ThrowIfStopping()
    {
        if (IsLatched) throw new MotionRefusedException("emergency stop is latched");
        if (Volatile.Read(ref _stopsInProgress) > 0) throw new MotionRefusedException("a stop is in progress");
    }

    /// <summary>
    /// The stop after the stop bytes: once motion has stopped, flush the queue, needle drive off,
    /// retract straight up, sync. Starts over when a new emergency stop's bytes arrive meanwhile
    /// (they put the firmware in a hold again, which would block the retract). One at a time.
    /// </summary>
    private async Task<(List<string> Steps, string Error)> FinishStopAsync(CancellationToken cancellationToken)
    {
        await _sequenceLock.WaitAsync(cancellationToken);
        Interlocked.Increment(ref _stopsInProgress);
        try
        {
            while (true)
            {
                var restart = Volatile.Read(ref _sequenceRestart).Token;
#pragma warning disable CA2000 // false positive: the using declaration disposes it on every path
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, restart);
#pragma warning restore CA2000
                try
                {
                    var result = await StopStepsAsync(linked.Token);
                    StopSequenceFinished?.Invoke(this, new StopSequenceFinishedEventArgs(result.Steps, result.Error));
                    return result;
                }
                catch (OperationCanceledException) when (restart.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    Log.StopSequenceRestarted(_log);
                }
            }
        }
        finally
        {
            Interlocked.Decrement(ref _stopsInProgress);
            _sequenceLock.Release();
        }
    }

    private async Task<(List<string> Steps, string Error)> StopStepsAsync(CancellationToken cancellationToken)
    {
        var steps = new List<string>();
        try
        {
            var client = _gantry.Client ?? throw new GantryFaultException(GantryFaultKind.LinkLost, 0, "no gantry client");
            var flushed = false;
            if (client.LockedByAlarm is not null)
            {
                // A hard or soft limit: grbl already stopped the motion and the needle drive, and answers
                // nothing until it is reset. Reset it (again after its deaf half second if need be); never re-send a line.
                await client.SoftResetAsync(cancellationToken);
                steps.Add("reset-after-alarm");
                flushed = true;
            }
            // Wait for motion to decelerate to a stop, so the reset below keeps the position.
            var deadline = _time.GetTimestamp();
            GrblStatus status;
            while (true)
            {
                status = await client.QueryStatusAsync(cancellationToken);
                if (status.State is "Hold:0" or "Door:0" or "Idle" or "Alarm" or "Check") break;
                if (_time.GetElapsedTime(deadline) > HoldSettleTimeout)
                {
                    return (steps, $"motion did not stop within {HoldSettleTimeout.TotalSeconds:0} s (state {status.State}): use the hard-wired e-stop");
                }
                await Task.Delay(TimeSpan.FromMilliseconds(5), _time, cancellationToken);
            }
            // No motion line can follow the stop bytes (see SendMotionLineAsync): the flush removes every one queued.
            if (!flushed) await client.SoftResetAsync(cancellationToken);
            steps.Add("queue-flushed");
            status = await client.QueryStatusAsync(cancellationToken);
            if (status.IsAlarm)
            {
                // Position may be lost (e.g. ALARM:3); a straight-up retract is still safe, homing is required after.
                _gantry.InvalidateHoming();
                await ExpectOkAsync(client, MachineLines.Unlock, cancellationToken);
            }
            var retractZ = Math.Min(status.MachinePosition.Z + _profile.HoverHeightMm + _profile.Needle.MaxDepthMm, _profile.TopZMm);
            await ExpectOkAsync(client, MachineLines.DriveOff, cancellationToken);
            var retractMm = new StepGrid(_profile.StepsPerMm).Quantise(new Vec3(0, 0, retractZ - status.MachinePosition.Z)).Z;
            if (retractMm > 0)
            {
                // Relative and single-digit, like every session Z move: a corrupted byte cannot turn "up" into "deep".
                await ExpectOkAsync(client, MachineLines.RetractStraightUp(retractMm), cancellationToken);
            }
            await ExpectOkAsync(client, DotProgram.Sync, cancellationToken);
            steps.Add("retracted");
            return (steps, "");
        }
        catch (Exception e) when (e is IOException or GantryFaultException or InvalidOperationException or TimeoutException)
        {
            Log.StopSequenceFailed(_log, e.Message);
            return (steps, $"stop sequence failed after [{string.Join(", ", steps)}]: {e.Message}; use the hard-wired e-stop");
        }
    }

    public void Dispose()
    {
        _shutdown.Cancel();
        _shutdown.Dispose();
        _sequenceLock.Dispose();
        Volatile.Read(ref _motionHoldInterrupt).Dispose();
        Volatile.Read(ref _sequenceRestart).Dispose();
    }

    /// <summary>A stop-sequence line, outside the motion gate (the sequence is the stop), acknowledged within <see cref="AckPolicy"/>.</summary>
    private async Task ExpectOkAsync(GrblClient client, ProgramLine line, CancellationToken cancellationToken)
    {
        var ack = await client.ExecuteAsync(line.Line, cancellationToken).WaitAsync(AckPolicy.Bound(line.KinematicSeconds, _gantry.TimeScale), _time, cancellationToken);
        if (!ack.Ok) throw new InvalidOperationException($"'{line.Line}' was refused: error:{ack.ErrorCode} {ack.ErrorText}");
    }

    /// <summary>Log messages (source-generated).</summary>
    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Error, Message = "The audit log could not record {Kind} ({Message}): {Reason}")]
        public static partial void NotRecorded(ILogger log, string kind, string message, string reason);

        [LoggerMessage(Level = LogLevel.Error, Message = "An e-stop listener failed")]
        public static partial void ListenerFailed(ILogger log, Exception error);

        [LoggerMessage(Level = LogLevel.Warning, Message = "EMERGENCY STOP from {Source}: {Reason}")]
        public static partial void EmergencyStop(ILogger log, string source, string reason);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Motion hold, retracting the needle: {Reason}")]
        public static partial void MotionHold(ILogger log, string reason);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Background stop abandoned as the controller stops: {Outcome}")]
        public static partial void BackgroundStopAbandoned(ILogger log, string outcome);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Background stop after a silent firmware: {Outcome}")]
        public static partial void BackgroundStopDone(ILogger log, string outcome);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Background stop abandoned as the controller stops: {Message}")]
        public static partial void BackgroundStopInterrupted(ILogger log, string message);

        [LoggerMessage(Level = LogLevel.Error, Message = "Background stop failed")]
        public static partial void BackgroundStopFailed(ILogger log, Exception error);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Emergency stop reset by {Source}")]
        public static partial void Reset(ILogger log, string source);

        [LoggerMessage(Level = LogLevel.Information, Message = "Another emergency stop arrived during the stop sequence: starting it over")]
        public static partial void StopSequenceRestarted(ILogger log);

        [LoggerMessage(Level = LogLevel.Error, Message = "Stop sequence failed: {Message}")]
        public static partial void StopSequenceFailed(ILogger log, string message);
    }
}

/// <summary>The latch of an emergency stop (<see cref="SafetySupervisor.EmergencyStopLatched"/>).</summary>
public sealed class EmergencyStopEventArgs(EmergencyStopState state) : EventArgs
{
    /// <summary>The state as latched.</summary>
    public EmergencyStopState State { get; } = state;
}

/// <summary>An emergency-stop request's stop bytes written (<see cref="SafetySupervisor.StopBytesWritten"/>).</summary>
public sealed class StopBytesWrittenEventArgs(long arrivedTimestamp, long holdWrittenTimestamp) : EventArgs
{
    /// <summary>TimeProvider timestamp of the request's arrival.</summary>
    public long ArrivedTimestamp { get; } = arrivedTimestamp;

    /// <summary>TimeProvider timestamp of the feed-hold byte's write; 0 when it was not written.</summary>
    public long HoldWrittenTimestamp { get; } = holdWrittenTimestamp;
}

/// <summary>A stop sequence that ended (<see cref="SafetySupervisor.StopSequenceFinished"/>).</summary>
public sealed class StopSequenceFinishedEventArgs(IReadOnlyList<string> steps, string error) : EventArgs
{
    /// <summary>The steps it did.</summary>
    public IReadOnlyList<string> Steps { get; } = steps;

    /// <summary>Its error; "" when complete.</summary>
    public string Error { get; } = error;
}
