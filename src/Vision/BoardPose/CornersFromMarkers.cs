using OpenCvSharp;

namespace SmpRobot.Vision.BoardPose;

/// <summary>Markers found in a frame: corners in frame pixels and ids, same order, at most one of each id.</summary>
/// <param name="Corners">Each marker's four corners, as the detector reports them, px.</param>
/// <param name="Ids">Board marker ids.</param>
/// <param name="Seen">Indexed by marker id: true when that marker is among these.</param>
internal readonly record struct FoundMarkers(List<Point2f[]> Corners, List<int> Ids, bool[] Seen);

/// <summary>
/// The second half of a search on a scaled-down copy of a frame region (the region search and the
/// coarse full search): the markers' corners taken back to full resolution, then the chessboard
/// corners placed with a homography fitted to them (in undistorted coordinates) and refined at full
/// resolution like a full search's. Owns the camera matrices it undistorts with: dispose it.
/// </summary>
internal sealed class CornersFromMarkers : IDisposable
{
    private readonly BoardLayout _layout;
    private readonly CameraIntrinsics _intrinsics;
    private readonly Mat _cameraMatrix;
    private readonly Mat _distortion;

    public CornersFromMarkers(BoardLayout layout, CameraIntrinsics intrinsics)
    {
        _layout = layout;
        _intrinsics = intrinsics;
        _cameraMatrix = intrinsics.CameraMatrix();
        _distortion = intrinsics.DistortionMat();
    }

    /// <summary>
    /// Markers detected on a copy of <paramref name="region"/> resized to <paramref name="scaledSize"/>,
    /// in frame pixels; ids not of the board, repeats and shapes other than quads are left out.
    /// </summary>
    public FoundMarkers FromScaled(Point2f[][] scaledCorners, int[] scaledIds, Size scaledSize, Rect region)
    {
        var sx = scaledSize.Width / (double)region.Width;
        var sy = scaledSize.Height / (double)region.Height;
        var left = region.X;
        var top = region.Y;
        var seen = new bool[_layout.MarkerCount];
        var markerCorners = new List<Point2f[]>(scaledIds.Length);
        var markerIds = new List<int>(scaledIds.Length);
        for (var i = 0; i < scaledIds.Length; i++)
        {
            var id = scaledIds[i];
            if (id < 0 || id >= _layout.MarkerCount || seen[id] || scaledCorners[i].Length != 4) continue;
            seen[id] = true;
            // Pixel centres: scaled pixel i spans region pixels [i/s, (i+1)/s).
            markerCorners.Add([.. scaledCorners[i].Select(p => new Point2f((float)(((p.X + 0.5) / sx) - 0.5 + left), (float)(((p.Y + 0.5) / sy) - 0.5 + top)))]);
            markerIds.Add(id);
        }
        return new FoundMarkers(markerCorners, markerIds, seen);
    }

    /// <summary>
    /// <paramref name="markers"/> and the chessboard corners beside two of them, predicted from the
    /// markers and refined in <paramref name="regionGray"/> (the grey copy of <paramref name="region"/>
    /// at full resolution) with a window sized for <paramref name="pxPerMm"/>.
    /// </summary>
    public BoardDetection Detection(FoundMarkers markers, Mat regionGray, Rect region, double pxPerMm)
    {
        var corners = InterpolateCorners(markers, regionGray, region, pxPerMm);
        return new BoardDetection([.. markers.Corners], [.. markers.Ids], corners.Select(c => c.Point).ToArray(), corners.Select(c => c.Id).ToArray());
    }

    private List<(int Id, Point2f Point)> InterpolateCorners(FoundMarkers markers, Mat regionGray, Rect region, double pxPerMm)
    {
        var (markerCorners, markerIds, seen) = markers;
        var result = new List<(int, Point2f)>();
        if (markerIds.Count < 2) return result;
        var boardPoints = new List<Point2d>(markerIds.Count * 4);
        var imagePoints = new Point2f[markerIds.Count * 4];
        for (var m = 0; m < markerIds.Count; m++)
        {
            for (var k = 0; k < 4; k++)
            {
                var h = _layout.MarkerCornerH(markerIds[m], k);
                boardPoints.Add(new Point2d(h.X, h.Y));
                imagePoints[(m * 4) + k] = markerCorners[m][k];
            }
        }
        using var distorted = Mat.FromArray(imagePoints);
        using var normalised = new Mat();
        Cv2.UndistortPoints(distorted, normalised, _cameraMatrix, _distortion);
        normalised.GetArray(out Point2f[] undistorted);
        using var homography = Cv2.FindHomography(boardPoints, undistorted.Select(p => new Point2d(p.X, p.Y)));
        if (homography.Empty()) return result;
        homography.GetArray(out double[] h9);

        var board = _layout.Board;
        var ids = new List<int>();
        var predicted = new List<Point2f>();
        for (var id = 0; id < board.CornerCount; id++)
        {
            var (a, b) = _layout.MarkersBesideCorner(id);
            if (a < 0 || b < 0 || !seen[a] || !seen[b]) continue;
            var c = board.CornerInHead(id);
            var w = (h9[6] * c.X) + (h9[7] * c.Y) + h9[8];
            if (!(Math.Abs(w) > 1e-12)) continue;
            var (xd, yd) = _intrinsics.Distort(((h9[0] * c.X) + (h9[1] * c.Y) + h9[2]) / w, ((h9[3] * c.X) + (h9[4] * c.Y) + h9[5]) / w);
            var u = (_intrinsics.FxPx * xd) + _intrinsics.CxPx - region.X;
            var v = (_intrinsics.FyPx * yd) + _intrinsics.CyPx - region.Y;
            if (u < 1 || v < 1 || u > region.Width - 2 || v > region.Height - 2) continue;
            ids.Add(id);
            predicted.Add(new Point2f((float)u, (float)v));
        }
        if (ids.Count == 0) return result;
        var half = SubPixCorners.HalfWindowPx(board.Spec, pxPerMm);
        var refined = SubPixCorners.Refine(regionGray, predicted, half);
        for (var i = 0; i < ids.Count; i++)
        {
            // A corner that wandered off more than half its window did not find its saddle point
            // (occluded, blurred away): leave it out rather than bend the pose.
            var dx = refined[i].X - predicted[i].X;
            var dy = refined[i].Y - predicted[i].Y;
            if ((dx * dx) + (dy * dy) > half * half / 4.0) continue;
            result.Add((ids[i], new Point2f(refined[i].X + region.X, refined[i].Y + region.Y)));
        }
        return result;
    }

    public void Dispose()
    {
        _cameraMatrix.Dispose();
        _distortion.Dispose();
    }
}
