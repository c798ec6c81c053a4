using SmpRobot.Geometry;

namespace SmpRobot.Vision.BoardPose;

/// <summary>
/// The tracker's memory of the board: the last two poses found, when, and how many markers the
/// last one saw; and where the board should be in the next frame. Not thread-safe.
/// </summary>
internal sealed class PoseHistory
{
    private RigidTransform? _previousPose;
    private long _previousTimestamp;
    private long _lastTimestamp;

    /// <summary>The last pose found; null before the first or after <see cref="Forget"/>.</summary>
    public RigidTransform? Last { get; private set; }

    /// <summary>Markers the last pose saw; 0 without one.</summary>
    public int LastMarkers { get; private set; }

    /// <summary>Takes <paramref name="pose"/> as the newest; the one before becomes the previous.</summary>
    public void Remember(TrackedPose pose)
    {
        _previousPose = Last;
        _previousTimestamp = _lastTimestamp;
        Last = pose.CameraFromHead;
        _lastTimestamp = pose.CapturedTimestamp;
        LastMarkers = pose.MarkersSeen;
    }

    /// <summary>Forgets both poses: there is nothing to track from until the next <see cref="Remember"/>.</summary>
    public void Forget()
    {
        Last = null;
        _previousPose = null;
        LastMarkers = 0;
    }

    /// <summary>
    /// <see cref="Last"/> moved on by the last frame-to-frame translation, scaled to the time from
    /// the last pose to <paramref name="timestamp"/> (TimeProvider ticks); the rotation is kept (a
    /// head turns too little between frames to matter for a start point). <see cref="Last"/> as it
    /// is without a previous pose, for a timestamp not after the last, or one more than three of the
    /// last frame intervals ahead. Throws InvalidOperationException without a last pose.
    /// </summary>
    public RigidTransform Extrapolate(long timestamp)
    {
        var last = Last ?? throw new InvalidOperationException("no pose to extrapolate from");
        if (_previousPose is not { } previous || _lastTimestamp <= _previousTimestamp || timestamp <= _lastTimestamp) return last;
        var ratio = (timestamp - _lastTimestamp) / (double)(_lastTimestamp - _previousTimestamp);
        if (ratio > 3) return last;
        var r = Rotations.RotationMatrix(last);
        var t = last.Translation + ((last.Translation - previous.Translation) * ratio);
        return Rotations.FromMatrix(r, t);
    }
}
