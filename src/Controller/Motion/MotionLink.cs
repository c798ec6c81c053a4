using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Safety;

namespace SmpRobot.Controller.Motion;

/// <summary>
/// The one way a session, a calibration or a manual move drives the gantry: lines go through the
/// safety supervisor's motion gate (refused once a stop has begun), every ack is awaited with
/// <see cref="AckPolicy"/>, and a sync line (<c>G4 P0</c>) proves the motion ran. Between policy
/// (Sessions, Calibration) and the protocol (<see cref="GrblClient"/>); it decides nothing itself.
/// </summary>
public sealed class MotionLink(GantryConnection gantry, SafetySupervisor safety, TimeProvider timeProvider)
{
    /// <summary>The connected client; throws <see cref="GantryFaultException"/> (LinkLost) when there is none.</summary>
    public GrblClient Client => gantry.RequireClient();

    /// <summary>Machine seconds per wall second (the simulator's time scale; 1 on hardware).</summary>
    public double TimeScale => gantry.TimeScale;

    /// <summary>Writes one line through the motion gate without waiting for its ok.</summary>
    /// <exception cref="MotionRefusedException">A stop has begun or the e-stop is latched.</exception>
    public ValueTask<SentLine> SendAsync(ProgramLine line, CancellationToken cancellationToken) =>
        safety.SendMotionLineAsync(Client, line.Line, cancellationToken);

    /// <summary>
    /// Awaits a sent line's ok within <see cref="AckPolicy.Bound"/> of the
    /// <paramref name="queuedMachineSeconds"/> ahead of it.
    /// </summary>
    /// <exception cref="TimeoutException">No ok in time (the message names the line and the bound).</exception>
    /// <exception cref="LineRefusedException">The firmware answered error:N.</exception>
    public async Task AckAsync(SentLine sent, double queuedMachineSeconds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sent);
        var bound = AckPolicy.Bound(queuedMachineSeconds, gantry.TimeScale);
        LineAck ack;
        try
        {
            ack = await sent.Ack.WaitAsync(bound, timeProvider, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException(FormattableString.Invariant($"the firmware did not acknowledge '{sent.Line}' within {bound.TotalSeconds:0.0} s"));
        }
        if (!ack.Ok) throw new LineRefusedException($"the firmware refused '{ack.Line}': error:{ack.ErrorCode} {ack.ErrorText}");
    }

    /// <summary>
    /// Sends travel <paramref name="lines"/>, then a sync line, and returns once the sync's ok proves the
    /// firmware has executed everything before it. Only the sync's ok is awaited: a travel line the
    /// firmware refused (a byte lost on the wire) shows as a gantry that is not where it should be, which
    /// the caller checks from a status report before anything plunges (a refusal there holds a session
    /// rather than faulting it). Returns the lines' kinematic time, s.
    /// </summary>
    public async Task<double> MoveAndSyncAsync(IReadOnlyList<ProgramLine> lines, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(lines);
        var seconds = 0.0;
        foreach (var line in lines)
        {
            await SendAsync(line, cancellationToken);
            seconds += line.KinematicSeconds;
        }
        await AckAsync(await SendAsync(DotProgram.Sync, cancellationToken), seconds, cancellationToken);
        return seconds;
    }

    /// <summary>
    /// Sends every line and awaits each ok in order (the sync included when the lines end with one):
    /// for a program whose every line must be accepted, like a dot's plunge, dwell and retract.
    /// Returns their kinematic time, s.
    /// </summary>
    public async Task<double> RunAsync(IReadOnlyList<ProgramLine> lines, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(lines);
        var sent = new SentLine[lines.Count];
        var seconds = 0.0;
        for (var i = 0; i < lines.Count; i++)
        {
            sent[i] = await SendAsync(lines[i], cancellationToken);
            seconds += lines[i].KinematicSeconds;
        }
        foreach (var line in sent) await AckAsync(line, seconds, cancellationToken);
        return seconds;
    }

    /// <summary>
    /// Runs one probe cycle (<see cref="MachineLines.ProbeDown"/>) through the motion gate and returns grbl's report
    /// of it, read before its ok (the firmware runs the cycle only after everything queued before it).
    /// </summary>
    /// <exception cref="GantryFaultException">ALARM:4 (the probe input was already triggered) or ALARM:5 (no contact within the distance), or the link failed.</exception>
    /// <exception cref="LineRefusedException">The firmware refused the line (error:N).</exception>
    /// <exception cref="InvalidOperationException">An ok came without a probe report: the firmware does not report probe cycles (grbl built without MESSAGE_PROBE_COORDINATES).</exception>
    public async Task<ProbeReport> ProbeAsync(ProgramLine probe, CancellationToken cancellationToken)
    {
        var sent = await SendAsync(probe, cancellationToken);
        var bound = AckPolicy.Bound(probe.KinematicSeconds, gantry.TimeScale);
        LineAck ack;
        try
        {
            ack = await sent.Ack.WaitAsync(bound, timeProvider, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException(FormattableString.Invariant($"the firmware did not finish the probe cycle '{sent.Line}' within {bound.TotalSeconds:0.0} s"));
        }
        if (!ack.Ok) throw new LineRefusedException($"the firmware refused '{ack.Line}': error:{ack.ErrorCode} {ack.ErrorText}");
        return ack.Probe ?? throw new InvalidOperationException($"the firmware answered '{ack.Line}' without a [PRB:…] report: it must be built to report probe cycles (grbl's MESSAGE_PROBE_COORDINATES, on by default)");
    }

    /// <summary>Sends lines that do not move (modal state, needle drive) and awaits each ok.</summary>
    public async Task SetUpAsync(IReadOnlyList<ProgramLine> lines, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(lines);
        foreach (var line in lines) await AckAsync(await SendAsync(line, cancellationToken), 0, cancellationToken);
    }

    /// <summary>
    /// Needle drive off, acknowledged. Not through the motion gate: switching the needle off is never
    /// refused, not even while a stop sequence runs.
    /// </summary>
    public async Task DriveOffAsync(CancellationToken cancellationToken) =>
        await AckAsync(await Client.SendLineAsync(MachineLines.DriveOff.Line, cancellationToken), 0, cancellationToken);

    /// <summary>A fresh status report (sent after everything written so far).</summary>
    public Task<GrblStatus> StatusAsync(CancellationToken cancellationToken) => Client.QueryStatusAsync(cancellationToken);
}

/// <summary>The firmware answered error:N to a motion line.</summary>
public sealed class LineRefusedException(string message) : Exception(message);
