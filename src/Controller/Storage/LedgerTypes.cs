using SmpRobot.Geometry;

namespace SmpRobot.Controller.Storage;

/// <summary>
/// Where a dot stands. Allowed moves: Pending → Commanded (intent recorded just before the plunge),
/// Commanded → Placed (the firmware proved the motion finished), Commanded → InDoubt (a fault or restart
/// between the two), InDoubt → Placed / Pending (redo) / Skipped by an operator, and Commanded → Pending only when the
/// controller knows no plunge line was written (the record store was cut off while the intent was committed:
/// <see cref="LedgerStore.WithdrawIntent"/>). Nothing else.
/// </summary>
public enum DotLedgerState
{
    Pending = 1,
    Commanded = 2,
    Placed = 3,
    Skipped = 4,
    InDoubt = 5,
}

/// <summary>Phase of a session, as stored. The session state machine (Sessions/) decides the moves.</summary>
public enum SessionPhase
{
    Created = 1,
    Running = 2,
    Pausing = 3,
    Paused = 4,
    Completed = 5,
    Aborted = 6,
    EmergencyStopped = 7,
    Faulted = 8,
}

/// <summary>
/// A dot of a session in head frame H. <paramref name="Seq"/> is its 0-based place in the execution order;
/// <paramref name="Patch"/> the head position it is placed in (0: the nominal one), from the session's plan.
/// </summary>
public sealed record PlannedDot(int Seq, string DotId, double XMm, double YMm, double ZMm, double DepthMm, double DwellMs, string PigmentId, int Patch = 0);

/// <summary>
/// A dot and where it stands. <paramref name="TargetMm"/> is the gantry-frame target recorded when it was
/// commanded (null while Pending); <paramref name="Note"/> says why it is InDoubt or how it was resolved.
/// </summary>
public sealed record LedgerDot(PlannedDot Dot, DotLedgerState State, Vec3? TargetMm, string Note);

/// <summary>
/// A stored session. Times are UTC. <paramref name="CalibrationId"/> is the gantry calibration its last start
/// ran with (null: none, e.g. a fixed head or an override); <paramref name="OverrideBy"/> and
/// <paramref name="OverrideReason"/> record who started it without a valid calibration, and why.
/// </summary>
public sealed record SessionRecord(
    string Id,
    string PlanName,
    string ProfileName,
    SessionPhase Phase,
    string Reason,
    double ElapsedSeconds,
    double KinematicSeconds,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? EndedAt,
    string? CalibrationId = null,
    string? OverrideBy = null,
    string? OverrideReason = null)
{
    /// <summary>The automatic holds of all the session's finished runs (default: none).</summary>
    public HoldTally Holds { get; init; } = HoldTally.None;

    /// <summary>The treatment the session belongs to (null: a session of a loose plan).</summary>
    public string? TreatmentId { get; init; }

    /// <summary>Its number in the treatment (1..n sessions, then touch-ups); 0 outside a treatment.</summary>
    public int TreatmentSessionNumber { get; init; }
}

/// <summary>A session's automatic holds over all its runs.</summary>
/// <param name="Holds">Automatic holds (tracking, motion, verification), counted as the cycle began each.</param>
/// <param name="Retracts">Needles pulled out mid-dot.</param>
/// <param name="LastHoldReason">The reason of the latest hold; empty when none.</param>
public sealed record HoldTally(int Holds, int Retracts, string LastHoldReason)
{
    /// <summary>No hold yet.</summary>
    public static readonly HoldTally None = new(0, 0, "");
}

/// <summary>How many dots of a session are in each state.</summary>
public sealed record DotTally(int Total, int Pending, int Commanded, int Placed, int Skipped, int InDoubt);
