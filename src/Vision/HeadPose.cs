using SmpRobot.Geometry;
namespace SmpRobot.Vision;

/// <summary>
/// One head pose: T_GH, the head frame H expressed in gantry frame G (T_GC · T_CH for a tracked
/// head), stamped with the timestamp (on the source's <see cref="IHeadPoseSource.Clock"/>) of the
/// camera frame it came from.
/// </summary>
/// <param name="GantryFromHead">T_GH: maps head-frame points (plan dots) to gantry coordinates, predicted to the time asked for.</param>
/// <param name="CapturedTimestamp">Timestamp of the source frame on the source's clock.</param>
/// <param name="Quality">0 (lost) .. 1 (perfect); the gates compare it with a threshold.</param>
/// <param name="HeadSpeedMmPerS">Estimated head speed.</param>
public sealed record HeadPoseSample(RigidTransform GantryFromHead, long CapturedTimestamp, double Quality, double HeadSpeedMmPerS);

/// <summary>The seam between tracking and placement: where the head is now, or will be shortly.</summary>
public interface IHeadPoseSource
{
    /// <summary>"fixed", "tracked:synthetic:sway", "tracked:device:0", ...</summary>
    string Description { get; }

    /// <summary>True when the pose comes from a camera (it can go stale, get poor or be lost).</summary>
    bool IsTracking { get; }

    /// <summary>The clock of <see cref="HeadPoseSample.CapturedTimestamp"/>: pose ages are measured on it.</summary>
    TimeProvider Clock { get; }

    /// <summary>
    /// The freshest pose predicted <paramref name="lookAhead"/> past now (default: now), or null when
    /// the head has never been seen.
    /// </summary>
    HeadPoseSample? Latest(TimeSpan lookAhead = default);

    /// <summary>Raised after each processed camera frame (on the tracking thread). Handlers must be quick and must not throw.</summary>
    event EventHandler? PoseUpdated;
}

/// <summary>
/// A still head (practice pad or a fixed head rest): the pose is a constant from the machine profile,
/// always fresh and perfect. Used when the controller runs without a camera.
/// </summary>
public sealed class FixedHeadPoseSource(RigidTransform gantryFromHead, TimeProvider timeProvider) : IHeadPoseSource
{
    private RigidTransform _headPose = RigidTransform.Identity;
    private readonly Lock _gate = new();

    public string Description => "fixed head (no camera)";

    public bool IsTracking => false;

    public TimeProvider Clock => timeProvider;

    /// <summary>
    /// The head's turn from its nominal pose, frame H (a plan's head position: the operator has turned the still
    /// head, e.g. a practice head on its stand, as the plan's patch says); identity for the nominal pose.
    /// </summary>
    public RigidTransform HeadPose
    {
        get { lock (_gate) return _headPose; }
        set { lock (_gate) _headPose = value; }
    }

    public HeadPoseSample Latest(TimeSpan lookAhead = default) => new(gantryFromHead * HeadPose, timeProvider.GetTimestamp(), 1.0, 0.0);

    HeadPoseSample? IHeadPoseSource.Latest(TimeSpan lookAhead) => Latest(lookAhead);

    /// <summary>Never raised: a fixed head has no frames.</summary>
    public event EventHandler? PoseUpdated { add { } remove { } }
}
