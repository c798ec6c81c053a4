using OpenCvSharp;
using SmpRobot.Geometry;

namespace SmpRobot.Vision.BoardPose;

/// <summary>
/// The cheapest way to find a board that moved little since the last frame: no marker search.
/// Every chessboard corner starts where a predicted pose puts it and is refined at full resolution;
/// only corners that sit on a true saddle point are kept; the pose is solved from them, then each
/// marker is checked by reading its cells where that pose puts it (<see cref="MarkerReader"/>).
/// Corners count only beside two confirmed markers, so a start point that slid to a neighbouring
/// corner (the chessboard repeats) cannot pass: the markers there read differently. Not
/// thread-safe. Owns its image buffer: dispose it.
/// </summary>
internal sealed class CornerFollower : IDisposable
{
    // A true saddle point brings cornerSubPix back to within a few thousandths of a pixel (measured
    // on the synthetic scenes, blur and noise included); a corner stuck on an edge comes back pixels off.
    private const double SaddleReturnPx = 0.1;

    private readonly BoardLayout _layout;
    private readonly CameraIntrinsics _intrinsics;
    private readonly BoardPoseOptions _options;
    private readonly PoseSolver _solver;
    private readonly MarkerReader _reader;
    private readonly GreyRegion _frame = new();

    public CornerFollower(BoardLayout layout, CameraIntrinsics intrinsics, BoardPoseOptions options, PoseSolver solver)
    {
        _layout = layout;
        _intrinsics = intrinsics;
        _options = options;
        _solver = solver;
        _reader = new MarkerReader(layout, intrinsics);
    }

    /// <summary>
    /// The board's pose in <paramref name="image"/> found from <paramref name="predicted"/>, and what
    /// it saw (marker corners are where the pose puts the confirmed markers). Null when fewer than
    /// max(<paramref name="minMarkers"/>, 2) markers read right, or the pose fails; the caller then
    /// searches for markers.
    /// </summary>
    public (TrackedPose Pose, BoardDetection Detection)? Follow(Mat image, RigidTransform predicted, long capturedTimestamp, int minMarkers)
    {
        var board = _layout.Board;
        var region = _layout.BoundsPx(predicted, _intrinsics, image.Size(), 0, 12);
        if (region is not { } rect) return null;
        _frame.Load(image, rect);

        var pxPerMm = _layout.MarkerSizesPx(predicted, _intrinsics).MeanSidePx / board.Spec.MarkerMm;
        if (!(pxPerMm > 0)) return null;
        var half = SubPixCorners.HalfWindowPx(board.Spec, pxPerMm);
        var ids = new List<int>(board.CornerCount);
        var starts = new List<Point2f>(board.CornerCount);
        for (var id = 0; id < board.CornerCount; id++)
        {
            var (a, b) = _layout.MarkersBesideCorner(id);
            if (a < 0 || b < 0) continue;
            var pC = predicted.Apply(board.CornerInHead(id));
            if (!(pC.Z > 0)) return null;
            var px = _intrinsics.Project(pC);
            var u = px.X - rect.X;
            var v = px.Y - rect.Y;
            if (u < half + 1 || v < half + 1 || u > rect.Width - half - 2 || v > rect.Height - half - 2) continue;
            ids.Add(id);
            starts.Add(new Point2f((float)u, (float)v));
        }
        if (ids.Count < Math.Max(4, _options.MinCorners)) return null;
        var refined = SubPixCorners.Refine(_frame.Gray, starts, half);
        // A true saddle point pulls cornerSubPix back from any side; a start that was too far off
        // for its window can stop on a single edge (free to slide along it) having hardly moved.
        // Restart each corner a little off its result, alternately along x and y, and keep it only
        // when it comes back.
        var offset = Math.Max(1.5f, half / 4f);
        var restarts = new Point2f[refined.Length];
        for (var i = 0; i < refined.Length; i++) restarts[i] = i % 2 == 0 ? new Point2f(refined[i].X + offset, refined[i].Y) : new Point2f(refined[i].X, refined[i].Y + offset);
        var again = SubPixCorners.Refine(_frame.Gray, restarts, half);
        var keptIds = new List<int>(ids.Count);
        var kept = new List<Point2f>(ids.Count);
        for (var i = 0; i < ids.Count; i++)
        {
            var dx = refined[i].X - starts[i].X;
            var dy = refined[i].Y - starts[i].Y;
            // Moved more than half its window: the board moved too far for this path (or the corner is hidden).
            if ((dx * dx) + (dy * dy) > half * half / 4.0) continue;
            var ex = again[i].X - refined[i].X;
            var ey = again[i].Y - refined[i].Y;
            if ((ex * ex) + (ey * ey) > SaddleReturnPx * SaddleReturnPx) continue;
            keptIds.Add(ids[i]);
            kept.Add(new Point2f(refined[i].X + rect.X, refined[i].Y + rect.Y));
        }
        var noMarkers = new BoardDetection([], [], [.. kept], [.. keptIds]);
        var first = _solver.Solve(noMarkers, capturedTimestamp, predicted);
        if (first is null) return null;

        var confirmed = new bool[_layout.MarkerCount];
        var confirmedCount = 0;
        for (var m = 0; m < _layout.MarkerCount; m++)
        {
            confirmed[m] = _reader.ReadsRight(_frame, first.CameraFromHead, m);
            if (confirmed[m]) confirmedCount++;
        }
        if (confirmedCount < Math.Max(minMarkers, 2)) return null;

        var finalIds = new List<int>(keptIds.Count);
        var finalCorners = new List<Point2f>(keptIds.Count);
        for (var i = 0; i < keptIds.Count; i++)
        {
            var (a, b) = _layout.MarkersBesideCorner(keptIds[i]);
            if (!confirmed[a] || !confirmed[b]) continue;
            finalIds.Add(keptIds[i]);
            finalCorners.Add(kept[i]);
        }
        var markerIds = Enumerable.Range(0, _layout.MarkerCount).Where(m => confirmed[m]).ToArray();
        var markerCorners = markerIds.Select(m => ProjectMarker(first.CameraFromHead, m)).ToArray();
        var detection = new BoardDetection(markerCorners, markerIds, [.. finalCorners], [.. finalIds]);
        var pose = finalIds.Count == keptIds.Count ? first with { MarkersSeen = confirmedCount } : _solver.Solve(detection, capturedTimestamp, first.CameraFromHead);
        return pose is null ? null : (pose, detection);
    }

    /// <summary>Marker <paramref name="marker"/>'s four corners where the pose puts them, px.</summary>
    private Point2f[] ProjectMarker(RigidTransform cameraFromHead, int marker)
    {
        var corners = new Point2f[4];
        for (var k = 0; k < 4; k++)
        {
            var p = _intrinsics.Project(cameraFromHead.Apply(_layout.MarkerCornerH(marker, k)));
            corners[k] = new Point2f((float)p.X, (float)p.Y);
        }
        return corners;
    }

    public void Dispose() => _frame.Dispose();
}
