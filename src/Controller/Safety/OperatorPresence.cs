using System.Globalization;
using SmpRobot.Machine;

namespace SmpRobot.Controller.Safety;

/// <summary>
/// The operator dead-man. Each supervising console streams heartbeats; a running session belongs
/// to one console (the one that started or resumed it) and may only move while that console's last
/// beat is younger than the profile's dead-man timeout, its stream is open, and (when the profile
/// has one) the foot pedal is held. A closed stream counts as absence at once. Beats must carry a
/// strictly increasing sequence per stream; a beat that does not is ignored.
/// </summary>
/// <remarks>Thread-safe; <c>_gate</c> guards the streams and is never held while raising events.</remarks>
public sealed class OperatorPresence
{
    private readonly MachineProfile _profile;
    private readonly TimeProvider _time;
    private readonly ISafetySwitch? _pedal;
    private readonly Lock _gate = new();
    private readonly List<StreamState> _streams = [];
    private int _nextStream;
    private long _rejectedBeats;

    /// <param name="profile">Gives the dead-man timeout.</param>
    /// <param name="timeProvider">Clock of the beats.</param>
    /// <param name="pedal">The operator's foot pedal; null when the machine has none.</param>
    public OperatorPresence(MachineProfile profile, TimeProvider timeProvider, ISafetySwitch? pedal = null)
    {
        _profile = profile;
        _time = timeProvider;
        _pedal = pedal;
        if (pedal is not null) pedal.Disengaged += (_, _) => Lost?.Invoke(this, new PresenceLostEventArgs(null, "foot pedal released"));
    }

    /// <summary>
    /// Raised (on the thread that noticed) when presence may have been lost at once: a console's
    /// heartbeat stream closed (<see cref="PresenceLostEventArgs.ConsoleId"/>: its id) or the foot pedal was released (null).
    /// Silence is noticed by whoever asks <see cref="IsPresent"/> (the session's watchdog).
    /// </summary>
    public event EventHandler<PresenceLostEventArgs>? Lost;

    /// <summary>The foot pedal, when the machine has one.</summary>
    public ISafetySwitch? Pedal => _pedal;

    /// <summary>Beats ignored because their sequence did not increase.</summary>
    public long RejectedBeats => Interlocked.Read(ref _rejectedBeats);

    /// <summary>A heartbeat stream opened; beat through the handle, dispose it when the stream closes.</summary>
    public ConsoleHeartbeats OpenStream()
    {
        lock (_gate)
        {
            var stream = new StreamState("stream-" + (++_nextStream).ToString(CultureInfo.InvariantCulture));
            _streams.Add(stream);
            return new ConsoleHeartbeats(this, stream);
        }
    }

    /// <summary>True while <paramref name="consoleId"/> supervises: an open stream with a fresh beat, and the pedal held (when there is one).</summary>
    public bool IsPresent(string consoleId) => AbsenceReason(consoleId) is null;

    /// <summary>True while any console has a fresh beat (for status displays).</summary>
    public bool AnyPresent
    {
        get
        {
            lock (_gate) return _streams.Any(IsFresh);
        }
    }

    /// <summary>The console with the freshest beat, or null when none is present (for a start that names no console).</summary>
    public string? FreshestConsole
    {
        get
        {
            lock (_gate) return _streams.Where(IsFresh).MaxBy(s => s.LastBeatTimestamp)?.ConsoleId;
        }
    }

    /// <summary>Operator name sent with <paramref name="consoleId"/>'s last beat; "" when none.</summary>
    public string OperatorName(string consoleId)
    {
        lock (_gate) return _streams.Where(s => s.ConsoleId == consoleId).MaxBy(s => s.LastBeatTimestamp)?.Operator ?? "";
    }

    /// <summary>TimeProvider timestamp of <paramref name="consoleId"/>'s last accepted beat; 0 when none.</summary>
    public long LastBeatTimestamp(string consoleId)
    {
        lock (_gate) return _streams.Where(s => s.ConsoleId == consoleId).Select(s => s.LastBeatTimestamp).DefaultIfEmpty(0).Max();
    }

    /// <summary>Why <paramref name="consoleId"/> does not count as supervising; null when it does.</summary>
    public string? AbsenceReason(string consoleId)
    {
        if (_pedal is { IsEngaged: false }) return "foot pedal released (the machine works only while it is held)";
        lock (_gate)
        {
            var mine = _streams.Where(s => s.ConsoleId == consoleId).ToList();
            if (mine.Count == 0) return $"console {consoleId} is not connected (its operator heartbeat stream is closed)";
            if (mine.Any(IsFresh)) return null;
            var last = mine.Max(s => s.LastBeatTimestamp);
            var ageMs = last == 0 ? double.PositiveInfinity : _time.GetElapsedTime(last).TotalMilliseconds;
            return FormattableString.Invariant($"operator heartbeat lost (last beat {ageMs:0} ms ago, limit {_profile.DeadManTimeoutMs:0} ms)");
        }
    }

    private bool IsFresh(StreamState s) =>
        s.LastBeatTimestamp != 0 && _time.GetElapsedTime(s.LastBeatTimestamp).TotalMilliseconds <= _profile.DeadManTimeoutMs;

    internal bool Beat(StreamState stream, string? consoleId, ulong sequence, string operatorName)
    {
        lock (_gate)
        {
            if (stream.LastSequence is { } last && sequence <= last)
            {
                Interlocked.Increment(ref _rejectedBeats);
                return false;
            }
            // A stream belongs to one console: the id of its first beat.
            if (stream.LastSequence is null && !string.IsNullOrWhiteSpace(consoleId)) stream.ConsoleId = consoleId;
            stream.LastSequence = sequence;
            stream.LastBeatTimestamp = _time.GetTimestamp();
            stream.Operator = operatorName;
            return true;
        }
    }

    internal void Close(StreamState stream)
    {
        lock (_gate)
        {
            if (!_streams.Remove(stream)) return;
        }
        Lost?.Invoke(this, new PresenceLostEventArgs(stream.ConsoleId, $"console {stream.ConsoleId} disconnected (operator heartbeat stream closed)"));
    }

    internal string ConsoleIdOf(StreamState stream)
    {
        lock (_gate) return stream.ConsoleId;
    }

    internal sealed class StreamState(string id)
    {
        public string ConsoleId { get; set; } = id;
        public ulong? LastSequence { get; set; }
        public long LastBeatTimestamp { get; set; }
        public string Operator { get; set; } = "";
    }
}

/// <summary>One console's heartbeat stream, as <see cref="OperatorPresence"/> sees it: open until disposed.</summary>
public sealed class ConsoleHeartbeats : IDisposable
{
    private readonly OperatorPresence _owner;
    private readonly OperatorPresence.StreamState _stream;
    private int _disposed;

    internal ConsoleHeartbeats(OperatorPresence owner, OperatorPresence.StreamState stream)
    {
        _owner = owner;
        _stream = stream;
    }

    /// <summary>The console this stream belongs to (its first beat's console id, else a per-stream id).</summary>
    public string ConsoleId => _owner.ConsoleIdOf(_stream);

    /// <summary>Records a beat; false (ignored) when its sequence does not increase.</summary>
    /// <param name="consoleId">The console's id; only the first beat's counts.</param>
    public bool Beat(string? consoleId, ulong sequence, string operatorName) => _owner.Beat(_stream, consoleId, sequence, operatorName);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) _owner.Close(_stream);
    }
}

/// <summary>Presence that may have been lost at once (<see cref="OperatorPresence.Lost"/>).</summary>
public sealed class PresenceLostEventArgs(string? consoleId, string reason) : EventArgs
{
    /// <summary>The console whose heartbeat stream closed; null for the foot pedal.</summary>
    public string? ConsoleId { get; } = consoleId;

    /// <summary>What happened, in words.</summary>
    public string Reason { get; } = reason;
}
