using SmpRobot.Controller.Motion;
using SmpRobot.Machine;

namespace SmpRobot.Controller.Safety;

/// <summary>
/// The operator dead-man: the console streams heartbeats while it supervises; a running session
/// may only plunge while a beat is younger than the profile's dead-man timeout. A closed heartbeat
/// stream counts as absence at once (the console is gone), not after the timeout.
/// </summary>
public sealed class OperatorPresence(MachineProfile profile, TimeProvider timeProvider)
{
    private readonly Lock _gate = new();
    private long _lastBeatTimestamp;
    private int _openStreams;
    private string _operator = "";

    /// <summary>Records a heartbeat from <paramref name="operatorName"/>.</summary>
    public void Beat(string operatorName)
    {
        lock (_gate)
        {
            _lastBeatTimestamp = timeProvider.GetTimestamp();
            _operator = operatorName;
        }
    }

    /// <summary>A heartbeat stream opened; dispose the result when it closes.</summary>
    public IDisposable OpenStream()
    {
        lock (_gate) _openStreams++;
        return new StreamHandle(this);
    }

    /// <summary>True while a heartbeat stream is open and its last beat is within the dead-man timeout.</summary>
    public bool IsPresent
    {
        get
        {
            lock (_gate)
            {
                return _openStreams > 0 && _lastBeatTimestamp != 0
                    && timeProvider.GetElapsedTime(_lastBeatTimestamp).TotalMilliseconds <= profile.DeadManTimeoutMs;
            }
        }
    }

    /// <summary>Name sent with the last beat.</summary>
    public string OperatorName { get { lock (_gate) return _operator; } }

    /// <summary>Why the operator counts as absent, for hold messages.</summary>
    public string AbsenceReason
    {
        get
        {
            lock (_gate)
            {
                if (_openStreams == 0) return "no operator console is connected (operator heartbeat stream closed)";
                var ageMs = _lastBeatTimestamp == 0 ? double.PositiveInfinity : timeProvider.GetElapsedTime(_lastBeatTimestamp).TotalMilliseconds;
                return FormattableString.Invariant($"operator heartbeat lost (last beat {ageMs:0} ms ago, limit {profile.DeadManTimeoutMs:0} ms)");
            }
        }
    }

    private sealed class StreamHandle(OperatorPresence owner) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                lock (owner._gate) owner._openStreams--;
            }
        }
    }
}
