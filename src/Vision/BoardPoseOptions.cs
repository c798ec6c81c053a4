namespace SmpRobot.Vision;

/// <summary>Detection settings.</summary>
public sealed record BoardPoseOptions
{
    /// <summary>Fewest ChArUco corners for a pose (at least 4, not all on one line). Default 4.</summary>
    public int MinCorners { get; init; } = 4;

    /// <summary>A pose whose RMS reprojection error exceeds this is refused (px). Default 2.</summary>
    public double MaxReprojectionErrorPx { get; init; } = 2.0;

    /// <summary>Reprojection error at which the quality's error factor falls to one half (px). Default 1.</summary>
    public double HalfQualityErrorPx { get; init; } = 1.0;

    /// <summary>Re-find missed markers from the board layout (helps under partial occlusion, costs time). Default true.</summary>
    public bool RefineMarkers { get; init; } = true;

    /// <summary>
    /// Track: search a frame first near the board's last pose (see <see cref="BoardPoseEstimator.Estimate"/>).
    /// First the chessboard corners are followed from where the last pose (moved on at its last
    /// speed) puts them and every marker is read where the new pose puts it; when that fails, the
    /// markers are searched for in a region around the last pose, scaled down so that a marker is
    /// about <see cref="TrackingMarkerSidePx"/> pixels wide; when that shows fewer markers than the
    /// last frame did, the whole frame is searched, as without tracking. Corners are always refined
    /// at full resolution the same way, so tracking changes speed, not the pose. Default true.
    /// </summary>
    public bool TrackInRegion { get; init; } = true;

    /// <summary>Margin of the tracking region on each side, as a fraction of the board's larger projected extent. Default 0.25 (covers a 5 mm jump between frames at 110 mm).</summary>
    public double RegionMarginFraction { get; init; } = 0.25;

    /// <summary>Marker side the tracking region is scaled down to for marker detection, px. Default 28.</summary>
    public double TrackingMarkerSidePx { get; init; } = 28;

    /// <summary>While tracking, search the whole frame anyway every this many frames (catches a board that moved out of the region unnoticed). Default 30 (once a second at 30 fps).</summary>
    public int FullFrameEveryFrames { get; init; } = 30;

    /// <summary>
    /// Search the whole frame coarse to fine first: markers on a copy scaled by
    /// <see cref="CoarseSearchScale"/> with one threshold window, the chessboard corners placed from
    /// them and refined at full resolution (as the region search does); only when that does not see
    /// the whole board, or gives no pose, does the classic full-resolution detection run. About a quarter of the cost (issue #10:
    /// re-acquisition after a jerk or an occlusion). Default true.
    /// </summary>
    public bool CoarseFullSearch { get; init; } = true;

    /// <summary>Scale of the coarse full search's copy. Default 0.5.</summary>
    public double CoarseSearchScale { get; init; } = 0.5;

    /// <summary>Adaptive-threshold window of the coarse search, px of the scaled copy (odd). Default 9, for markers of about 15 to 60 px there.</summary>
    public int CoarseThresholdWindowPx { get; init; } = 9;
}
