using SmpRobot.Geometry;

namespace SmpRobot.Controller.Gantry.Simulation;

/// <summary>Options of <see cref="SimulatedGantry"/>.</summary>
public sealed record SimulatedGantryOptions
{
    /// <summary>Simulated seconds per wall (TimeProvider) second; must be &gt; 0. Default 1 (real time).</summary>
    public double TimeScale { get; init; } = 1;

    /// <summary>Firmware version shown in the welcome banner. Default "1.1h".</summary>
    public string Version { get; init; } = "1.1h";

    /// <summary>
    /// Simulated seconds the firmware waits after switching the spindle back on when resuming from a
    /// safety-door hold (grbl's SAFETY_DOOR_SPINDLE_DELAY, 4 s by default). State is Door:3 meanwhile.
    /// </summary>
    public double DoorResumeSpindleDelaySeconds { get; init; } = 4.0;

    /// <summary>Feed of the homing seek moves, mm/min (capped by the axis limits). Null: the profile's travel feed.</summary>
    public double? HomingSeekMmPerMin { get; init; }

    /// <summary>Feed of the slow locate approach onto each homing switch, mm/min (grbl $24). Default 100.</summary>
    public double HomingLocateMmPerMin { get; init; } = 100;

    /// <summary>Faults to inject (see <see cref="FaultPlan"/>); null or empty: a healthy board. Each injected fault is logged in <see cref="SimulatedGantry.FaultLog"/>.</summary>
    public FaultPlan? Faults { get; init; }

    /// <summary>
    /// The skin the needle head's contact probe touches (grbl's probe input, G38.x). Null: nothing under the
    /// needle, so a G38.2 runs its whole distance and ends in ALARM:5.
    /// </summary>
    public ISimulatedSkin? Skin { get; init; }
}

/// <summary>
/// The skin under the simulated gantry, for its probe input: a contact probe on the needle head reads
/// "triggered" while the needle tip is at or below the skin. Positions are the simulator's physical frame,
/// which is the machine frame of a correctly homed board. The skin may move (a swaying head): it is a function
/// of simulated time, and must be deterministic in it (the simulator finds the moment of contact by searching).
/// </summary>
public interface ISimulatedSkin
{
    /// <summary>
    /// The height of the skin under (<paramref name="xMm"/>, <paramref name="yMm"/>) at <paramref name="simSeconds"/>:
    /// the z where a vertical line coming down from above first meets it; null where there is no skin below.
    /// </summary>
    double? SkinZMm(double xMm, double yMm, double simSeconds);
}

/// <summary>What a <see cref="SimMotion"/> was.</summary>
public enum SimMotionKind
{
    /// <summary>G0.</summary>
    Rapid,
    /// <summary>G1.</summary>
    Feed,
    /// <summary>G4 dwell (From == To).</summary>
    Dwell,
    /// <summary>One move of the $H homing cycle.</summary>
    Homing,
    /// <summary>$J= jog.</summary>
    Jog,
    /// <summary>A G38.x probe move (stopped by the probe input or at its target).</summary>
    Probe,
}

/// <summary>
/// One executed motion, in simulated seconds since power-on. For a move interrupted by feed hold,
/// safety door or reset, <paramref name="To"/> is where it actually stopped and <paramref name="Completed"/>
/// is false (the rest, when resumed, is a separate record with the same <paramref name="Line"/>).
/// </summary>
/// <param name="Kind">What it was.</param>
/// <param name="From">Where it started, mm (machine frame).</param>
/// <param name="To">Where it ended (its target, or where it stopped when interrupted), mm.</param>
/// <param name="StartSimSeconds">Start, simulated seconds since power-on.</param>
/// <param name="EndSimSeconds">End, simulated seconds since power-on.</param>
/// <param name="SpindleOn">Spindle state when the motion started.</param>
/// <param name="Completed">False when a feed hold, safety door or reset cut it short.</param>
/// <param name="Line">The G-code line (trimmed) that commanded it.</param>
public sealed record SimMotion(SimMotionKind Kind, Vec3 From, Vec3 To, double StartSimSeconds, double EndSimSeconds, bool SpindleOn, bool Completed, string Line)
{
    /// <summary>Duration, simulated seconds.</summary>
    public double DurationSeconds => EndSimSeconds - StartSimSeconds;
}

/// <summary>A real-time byte as it arrived at the firmware.</summary>
/// <param name="Command">The byte.</param>
/// <param name="Timestamp">TimeProvider.GetTimestamp() at arrival.</param>
/// <param name="SimSeconds">Simulated seconds since power-on at arrival.</param>
public sealed record SimRealtimeByte(byte Command, long Timestamp, double SimSeconds);
