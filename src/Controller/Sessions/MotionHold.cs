using Microsoft.Extensions.Logging;
using SmpRobot.Controller.Storage;

namespace SmpRobot.Controller.Sessions;

/// <summary>
/// The automatic motion hold of one run: whether the cycle is holding and why, for how long (on the
/// tracking clock), and the session's tally of holds and mid-dot retracts. Starting and ending a hold
/// is audited, logged and published. Repeated holds on one dot count together toward
/// <c>tracking.maxHoldSeconds</c>, so short holds cannot dodge it. Thread-safe (the snapshot reads it
/// while the runner changes it).
/// </summary>
public sealed partial class MotionHold(string sessionId, TimeProvider clock, HoldTally before, LedgerStore ledger, ILogger log, Action changed)
{
    private readonly Lock _gate = new();
    private string? _reason;
    private long _since;
    private long _dotSeq = -1;
    private long _firstHoldForDot;
    private int _holds = before.Holds;
    private int _retracts = before.Retracts;
    private string _lastReason = before.LastHoldReason;

    /// <summary>The clock holds are timed on (the pose source's).</summary>
    public TimeProvider Clock => clock;

    /// <summary>The needle is already clear of the skin (raised for a hold, or retracted). Runner only.</summary>
    public bool Raised { get; set; }

    /// <summary>A hold found mid-cycle (by verify, or the guard's retract), started by the next aim. Runner only.</summary>
    public string? Pending { get; set; }

    public bool Holding
    {
        get { lock (_gate) return _reason is not null; }
    }

    /// <summary>The tally so far (holds and retracts over the whole session, the last reason).</summary>
    public HoldTally Tally
    {
        get { lock (_gate) return new HoldTally(_holds, _retracts, _lastReason); }
    }

    /// <summary>Starts a hold for dot <paramref name="dotSeq"/>: audited, logged and published.</summary>
    public void Begin(string reason, long dotSeq)
    {
        lock (_gate)
        {
            _reason = reason;
            if (dotSeq != _dotSeq)
            {
                _dotSeq = dotSeq;
                _firstHoldForDot = clock.GetTimestamp();
            }
            _since = _firstHoldForDot;
            _lastReason = reason;
            _holds++;
        }
        TryAudit("hold", "motion hold: " + reason);
        Log.Holds(log, sessionId, reason);
        changed();
    }

    /// <summary>The hold goes on for another reason (the gate that fails now).</summary>
    public void Update(string reason)
    {
        lock (_gate)
        {
            if (_reason is null) return;
            _reason = reason;
            _lastReason = reason;
        }
    }

    /// <summary>Ends the hold; returns how long it lasted, s.</summary>
    public double End()
    {
        lock (_gate)
        {
            var seconds = _reason is null ? 0 : clock.GetElapsedTime(_since).TotalSeconds;
            _reason = null;
            return seconds;
        }
    }

    /// <summary>Tracking settled for <paramref name="goodMs"/>: the hold ends, audited and published.</summary>
    public void Settled(double goodMs)
    {
        var heldS = End();
        TryAudit("resumed", FormattableString.Invariant($"tracking settled for {goodMs:0} ms after a {heldS:0.0} s hold ({Tally.LastHoldReason}); going on"));
        Log.Resumes(log, sessionId, heldS);
        changed();
    }

    /// <summary>
    /// The record store answers again after a hold for it (<see cref="DotCycle"/>): the hold ends, audited (with how long
    /// the store was away) and published.
    /// </summary>
    public void StoreBack()
    {
        var reason = Current?.Reason ?? "";
        var heldS = End();
        TryAudit("resumed", FormattableString.Invariant($"the record store answers again after a {heldS:0.0} s hold ({reason}); going on"));
        Log.Resumes(log, sessionId, heldS);
        changed();
    }

    /// <summary>
    /// Audits a hold's start or end. A hold because the record store is unreachable cannot be written to it: it is
    /// logged, and its end is audited with its length once the store answers again (<see cref="StoreBack"/>).
    /// </summary>
    private void TryAudit(string kind, string message)
    {
        try
        {
            ledger.Audit(sessionId, kind, message);
        }
        catch (StoreUnavailableException e)
        {
            Log.NotAudited(log, sessionId, message, e.Message);
        }
    }

    /// <summary>How long the current hold has lasted (from the first hold on its dot), s; 0 when not holding.</summary>
    public double Seconds
    {
        get { lock (_gate) return _reason is null ? 0 : clock.GetElapsedTime(_since).TotalSeconds; }
    }

    /// <summary>The current hold, or null.</summary>
    public (string Reason, double Seconds)? Current
    {
        get { lock (_gate) return _reason is null ? null : (_reason, clock.GetElapsedTime(_since).TotalSeconds); }
    }

    /// <summary>A needle was pulled out mid-dot by a motion hold.</summary>
    public void CountRetract()
    {
        lock (_gate) _retracts++;
    }

    /// <summary>Log messages (source-generated).</summary>
    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "Session {SessionId} holds: {Reason}")]
        public static partial void Holds(ILogger log, string sessionId, string reason);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Session {SessionId}: not in the audit log ({Error}): {Message}")]
        public static partial void NotAudited(ILogger log, string sessionId, string message, string error);

        [LoggerMessage(Level = LogLevel.Information, Message = "Session {SessionId} resumes after a {Seconds:0.0} s hold")]
        public static partial void Resumes(ILogger log, string sessionId, double seconds);
    }
}
