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
