using SmpRobot.Geometry;

namespace SmpRobot.Controller.Gantry;

/// <summary>grbl real-time command bytes: they bypass the receive buffer and act at once.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1028", Justification = "the values are the bytes written on the wire")]
public enum GrblRealtime : byte
{
    StatusQuery = (byte)'?',
    FeedHold = (byte)'!',
    CycleStart = (byte)'~',
    SoftReset = 0x18,
    SafetyDoor = 0x84,
    JogCancel = 0x85,
}

/// <summary>One parsed status report <c>&lt;State|MPos:x,y,z|Bf:blocks,bytes|FS:feed,speed&gt;</c>.</summary>
/// <param name="State">Idle, Run, Hold:0, Hold:1, Jog, Alarm, Door:0..3, Check, Home, Sleep.</param>
/// <param name="MachinePosition">MPos, mm.</param>
/// <param name="PlannerBlocksFree">Bf first field; -1 when absent.</param>
/// <param name="RxBytesFree">Bf second field; -1 when absent.</param>
/// <param name="FeedMmPerMin">FS first field (or F); 0 when absent.</param>
/// <param name="SpindleSpeed">FS second field; 0 when absent.</param>
/// <param name="ReceivedTimestamp">TimeProvider timestamp at which the report was read.</param>
public sealed record GrblStatus(string State, Vec3 MachinePosition, int PlannerBlocksFree, int RxBytesFree, double FeedMmPerMin, double SpindleSpeed, long ReceivedTimestamp)
{
    public bool IsIdle => State == "Idle";
    public bool IsAlarm => State == "Alarm";
    public bool IsHold => State.StartsWith("Hold", StringComparison.Ordinal) || State.StartsWith("Door", StringComparison.Ordinal);
}

/// <summary>The firmware's answer to one line: <c>ok</c> or <c>error:N</c>.</summary>
/// <param name="Line">The line answered.</param>
/// <param name="Ok">True for ok.</param>
/// <param name="ErrorCode">N of error:N; 0 for ok.</param>
/// <param name="ErrorText">What grbl's error code means; empty for ok.</param>
/// <param name="Probe">For a probe cycle (G38.x): the <c>[PRB:…]</c> report the firmware sent before its ok; null otherwise.</param>
public sealed record LineAck(string Line, bool Ok, int ErrorCode, string ErrorText, ProbeReport? Probe = null);

/// <summary>
/// grbl's report of a probe cycle, <c>[PRB:x,y,z:s]</c>: where the probe input changed (or, without contact, where
/// the cycle stopped), in machine coordinates, mm.
/// </summary>
/// <param name="MachineMm">The position latched at the step the input changed (machine frame, mm).</param>
/// <param name="Contact">True when the input changed (grbl's success flag :1).</param>
/// <param name="ReceivedTimestamp">TimeProvider timestamp when the report was read.</param>
public sealed record ProbeReport(Vec3 MachineMm, bool Contact, long ReceivedTimestamp);

/// <summary>A line that has been written; <see cref="Ack"/> completes with its ok/error or faults with <see cref="GantryFaultException"/>.</summary>
public sealed record SentLine(string Line, Task<LineAck> Ack);

/// <summary>Why the link to the firmware can no longer be trusted.</summary>
public enum GantryFaultKind
{
    /// <summary>ALARM:N from the firmware.</summary>
    Alarm,
    /// <summary>The firmware restarted (a welcome banner mid-stream) or we soft-reset it: queued lines are gone.</summary>
    Reset,
    /// <summary>The transport closed, failed, or went silent past the status timeout.</summary>
    LinkLost,
    /// <summary>A line the client does not understand, or an ok with nothing in flight.</summary>
    Protocol,
    /// <summary>The client was disposed.</summary>
    Closed,
}

/// <summary>A gantry fault: pending acks fault with this and GrblClient.Faulted is raised.</summary>
public sealed class GantryFaultException(GantryFaultKind kind, int code, string message) : Exception(message)
{
    public GantryFaultKind Kind { get; } = kind;
    /// <summary>Alarm number for <see cref="GantryFaultKind.Alarm"/>, else 0.</summary>
    public int Code { get; } = code;
}

/// <summary>Options of GrblClient.</summary>
public sealed record GrblClientOptions
{
    /// <summary>Receive buffer size of the firmware (grbl: 128); the client keeps in flight at most this minus one.</summary>
    public int RxBufferBytes { get; init; } = 128;
    /// <summary>How long to wait for the welcome banner after open (and after a soft reset).</summary>
    public TimeSpan BannerTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>A status query that gets no report within this is a link fault.</summary>
    public TimeSpan StatusTimeout { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>
    /// A status report framed as one (<c>&lt;</c> … <c>&gt;</c>) whose fields do not parse is counted and dropped
    /// (a status query waiting for it asks again); this many in a row is a link fault. Default 3.
    /// </summary>
    public int GarbledStatusInARowLimit { get; init; } = 3;
    /// <summary>More garbled status reports than this within one minute is a link fault, however they are spread. Default 10.</summary>
    public int GarbledStatusPerMinuteLimit { get; init; } = 10;
}

/// <summary>A line was not written because the caller's gate (<c>mayWrite</c> of <see cref="GrblClient.SendLineAsync"/>) closed; nothing reached the wire.</summary>
public sealed class LineWriteRefusedException(string message) : Exception(message);
