using System.Runtime.InteropServices;
using OpenCvSharp;
using OpenCvSharp.Aruco;
using SmpRobot.Geometry;

namespace SmpRobot.Vision;

/// <summary>
/// One raw board pose from one frame.
/// </summary>
/// <param name="CameraFromHead">T_CH: head frame H (the board) in camera frame C, mm.</param>
/// <param name="CapturedTimestamp">TimeProvider timestamp of the frame.</param>
/// <param name="ReprojectionErrorPx">RMS distance between the detected ChArUco corners and the board's corners projected with this pose, px.</param>
/// <param name="MarkersSeen">Markers detected (of the board's).</param>
/// <param name="Quality">0 (lost) .. 1: corner coverage and reprojection error combined (see <see cref="BoardPoseEstimator"/>).</param>
public sealed record TrackedPose(RigidTransform CameraFromHead, long CapturedTimestamp, double ReprojectionErrorPx, int MarkersSeen, double Quality);

/// <summary>What the detector found in one frame (for pictures and diagnostics).</summary>
public sealed record BoardDetection(Point2f[][] MarkerCorners, int[] MarkerIds, Point2f[] CharucoCorners, int[] CharucoIds);

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

/// <summary>
/// Finds the ChArUco board in a frame (ArUco markers, then the chessboard corners between them,
/// refined to sub-pixel at full resolution) and solves its pose with solvePnP on the board's known
/// geometry (IPPE for planar targets, then Levenberg-Marquardt refinement).
/// Quality = sqrt(corners seen / board corners) × 1 / (1 + (reprojection error / HalfQualityErrorPx)²).
/// <see cref="Estimate"/> tracks when fed frames in capture order: after a pose it tries, cheapest
/// first, (1) following the corners from the predicted pose, checked by reading every marker's
/// cells, (2) a marker search in a scaled-down region around the last pose, (3) the whole frame
/// (see <see cref="BoardPoseOptions.TrackInRegion"/>). <see cref="Detect"/> always searches the
/// whole frame. Not thread-safe. Owns native objects: dispose it.
/// </summary>
public sealed class BoardPoseEstimator : IDisposable
{
    private const double CornerSubPixEps = 0.001;
    private const int CornerSubPixMaxIterations = 40;
    // A true saddle point brings cornerSubPix back to within a few thousandths of a pixel (measured
    // on the synthetic scenes, blur and noise included); a corner stuck on an edge comes back pixels off.
    private const double SaddleReturnPx = 0.1;
    // Grey levels between a marker's black border and the white around it, below which its cells are not read.
    private const double MinMarkerContrast = 20;

    private readonly MarkerBoard _board;
    private readonly CameraIntrinsics _intrinsics;
    private readonly BoardPoseOptions _options;
    private readonly CharucoDetector _detector;
    private readonly Mat _cameraMatrix;
    private readonly Mat _distortion;
    private readonly double[,] _cameraArray;
    private readonly double[] _distortionArray;
    private readonly Mat _gray = new();
    private readonly Mat _regionGray = new();
    private readonly Mat _regionSmall = new();
    private ArucoDetector? _coarseDetector;
    // Board layout: the four corners of each marker in H (page order: top-left, top-right,
    // bottom-right, bottom-left, as the detector reports them), and the two markers beside each
    // chessboard corner (a corner is interpolated only when both are seen, as OpenCV's minMarkers = 2).
    private readonly Vec3[][] _markerCornersH;
    private readonly (int A, int B)[] _cornerMarkers;
    // Each marker's cells (a one-cell black border around the dictionary's bits: 6×6 for 4×4
    // markers, 7×7 for 5×5), true = white, as the dictionary draws them.
    private readonly bool[][] _markerCells;
    private readonly int _cellsPerSide;
    private byte[] _pixels = [];

    // Tracking state: the last pose found by Estimate, and what it saw.
    private RigidTransform? _lastPose;
    private long _lastTimestamp;
    private RigidTransform? _previousPose;
    private long _previousTimestamp;
    private int _lastMarkers;
    private int _framesSinceFullSearch;

    public BoardPoseEstimator(MarkerBoard board, CameraIntrinsics intrinsics, BoardPoseOptions? options = null)
    {
        _board = board;
        _intrinsics = intrinsics;
        _options = options ?? new BoardPoseOptions();
        _cameraMatrix = intrinsics.CameraMatrix();
        _distortion = intrinsics.DistortionMat();
        _cameraArray = intrinsics.CameraMatrixArray();
        _distortionArray = [.. intrinsics.Distortion];
        var detectorParameters = new DetectorParameters
        {
            CornerRefinementMethod = CornerRefineMethod.Subpix,
        };
        _detector = new CharucoDetector(board.Board, _cameraMatrix, _distortion, 2, _options.RefineMarkers, true, detectorParameters, new RefineParameters());
        (_markerCornersH, _cornerMarkers) = BuildLayout(board);
        _cellsPerSide = board.Dictionary.MarkerSize + 2;
        _markerCells = BuildMarkerCells(board, _cellsPerSide);
    }

    /// <summary>The detections of the last <see cref="Estimate"/> or <see cref="Detect"/> call.</summary>
    public BoardDetection? LastDetection { get; private set; }

    /// <summary>Intrinsics used for the pose.</summary>
    public CameraIntrinsics Intrinsics => _intrinsics;

    /// <summary>True when the last <see cref="Estimate"/> searched the whole frame (no pose to track from, the region fell short, or the periodic full search).</summary>
    public bool LastSearchWasFullFrame { get; private set; }

    /// <summary><see cref="Estimate"/> calls that searched the whole frame, since construction.</summary>
    public long FullFrameSearches { get; private set; }

    /// <summary>Full-frame searches that the coarse-to-fine search answered (the classic detection was not needed), since construction.</summary>
    public long CoarseFullSearches { get; private set; }

    /// <summary><see cref="Estimate"/> calls that found their pose by searching for markers in the tracking region, since construction.</summary>
    public long RegionSearches { get; private set; }

    /// <summary><see cref="Estimate"/> calls that found their pose by following the corners from the last pose (no marker search), since construction.</summary>
    public long CornerFollows { get; private set; }

    /// <summary>Forgets the last pose: the next <see cref="Estimate"/> searches the whole frame.</summary>
    public void ResetTracking()
    {
        _lastPose = null;
        _previousPose = null;
        _lastMarkers = 0;
    }

    /// <summary>Detects the board only (no pose), searching the whole frame. Does not change the tracking state.</summary>
    public BoardDetection Detect(Mat image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var gray = ToGray(image);
        _detector.DetectBoard(gray, out var charucoCorners, out var charucoIds, out var markerCorners, out var markerIds);
        charucoCorners ??= [];
        markerCorners ??= [];
        if (charucoCorners.Length > 0) charucoCorners = RefineCorners(gray, charucoCorners, markerCorners);
        var detection = new BoardDetection(markerCorners, markerIds ?? [], charucoCorners, charucoIds ?? []);
        LastDetection = detection;
        return detection;
    }

    /// <summary>
    /// Detects the board and solves T_CH. Null when the board is not found well enough for a pose
    /// (too few corners, corners on one line, or a reprojection error above the limit). Frames must
    /// come in capture order: the search starts near the last pose found (see
    /// <see cref="BoardPoseOptions.TrackInRegion"/>); call <see cref="ResetTracking"/> between
    /// unrelated images.
    /// </summary>
    public TrackedPose? Estimate(Mat image, long capturedTimestamp)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (_options.TrackInRegion && _lastPose is { } last && _framesSinceFullSearch + 1 < Math.Max(1, _options.FullFrameEveryFrames))
        {
            _framesSinceFullSearch++;
            LastSearchWasFullFrame = false;
            var followed = FollowCorners(image, Extrapolate(last, capturedTimestamp), capturedTimestamp);
            if (followed is not null)
            {
                CornerFollows++;
                Remember(followed.Value.Pose);
                LastDetection = followed.Value.Detection;
                return followed.Value.Pose;
            }
            var regional = DetectInRegion(image, last);
            if (regional is not null && regional.MarkerIds.Length >= _lastMarkers)
            {
                var pose = Solve(regional, capturedTimestamp);
                if (pose is not null)
                {
                    RegionSearches++;
                    Remember(pose);
                    LastDetection = regional;
                    return pose;
                }
            }
        }

        LastSearchWasFullFrame = true;
        FullFrameSearches++;
        _framesSinceFullSearch = 0;
        TrackedPose? found = null;
        var detection = _options.CoarseFullSearch ? DetectCoarse(image) : null;
        if (detection is not null) found = Solve(detection, capturedTimestamp);
        if (found is null)
        {
            detection = Detect(image);
            found = Solve(detection, capturedTimestamp);
        }
        else
        {
            CoarseFullSearches++;
        }
        LastDetection = detection;
        if (found is null) ResetTracking();
        else Remember(found);
        return found;
    }

    private void Remember(TrackedPose pose)
    {
        _previousPose = _lastPose;
        _previousTimestamp = _lastTimestamp;
        _lastPose = pose.CameraFromHead;
        _lastTimestamp = pose.CapturedTimestamp;
        _lastMarkers = pose.MarkersSeen;
    }

    private TrackedPose? Solve(BoardDetection d, long capturedTimestamp, RigidTransform? guess = null)
    {
        var n = d.CharucoIds.Length;
        if (n < Math.Max(4, _options.MinCorners) || n != d.CharucoCorners.Length) return null;
        var objectPoints = new Point3f[n];
        for (var i = 0; i < n; i++)
        {
            var id = d.CharucoIds[i];
            if (id < 0 || id >= _board.CornerCount) return null;
            var p = _board.CornerInHead(id);
            objectPoints[i] = new Point3f((float)p.X, (float)p.Y, (float)p.Z);
        }
        if (AllOnOneLine(objectPoints)) return null;

        var rvec = new double[3];
        var tvec = new double[3];
        if (guess is { } g)
        {
            var w = Rotations.VectorFromMatrix(Rotations.RotationMatrix(g));
            (rvec[0], rvec[1], rvec[2]) = (w.X, w.Y, w.Z);
            (tvec[0], tvec[1], tvec[2]) = (g.Translation.X, g.Translation.Y, g.Translation.Z);
        }
        else
        {
            Cv2.SolvePnP(objectPoints, d.CharucoCorners, _cameraArray, _distortionArray, ref rvec, ref tvec, false, SolvePnPMethod.IPPE);
        }
        Cv2.SolvePnP(objectPoints, d.CharucoCorners, _cameraArray, _distortionArray, ref rvec, ref tvec, true, SolvePnPMethod.Iterative);
        var pose = Rotations.FromRotationVector(new Vec3(rvec[0], rvec[1], rvec[2]), new Vec3(tvec[0], tvec[1], tvec[2]));
        if (!pose.Translation.IsFinite || pose.Translation.Z <= 0) return null;

        var error = ReprojectionRms(pose, objectPoints, d.CharucoCorners);
        if (!(error <= _options.MaxReprojectionErrorPx)) return null;
        var coverage = Math.Clamp(n / (double)_board.CornerCount, 0, 1);
        var errorFactor = 1 / (1 + Math.Pow(error / _options.HalfQualityErrorPx, 2));
        var markers = d.MarkerIds.Count(id => id >= 0 && id < _board.MarkerCount);
        return new TrackedPose(pose, capturedTimestamp, error, markers, Math.Sqrt(coverage) * errorFactor);
    }

    private Mat ToGray(Mat image)
    {
        if (image.Channels() == 1) return image;
        Cv2.CvtColor(image, _gray, image.Channels() == 4 ? ColorConversionCodes.BGRA2GRAY : ColorConversionCodes.BGR2GRAY);
        return _gray;
    }

    /// <summary>
    /// The last pose moved on by the last frame-to-frame translation (scaled to the time elapsed);
    /// the rotation is kept (a head turns too little between frames to matter for a start point).
    /// </summary>
    private RigidTransform Extrapolate(RigidTransform last, long timestamp)
    {
        if (_previousPose is not { } previous || _lastTimestamp <= _previousTimestamp || timestamp <= _lastTimestamp) return last;
        var ratio = (timestamp - _lastTimestamp) / (double)(_lastTimestamp - _previousTimestamp);
        if (ratio > 3) return last;
        var r = Rotations.RotationMatrix(last);
        var t = last.Translation + ((last.Translation - previous.Translation) * ratio);
        return Rotations.FromMatrix(r, t);
    }

    /// <summary>
    /// The cheapest path, for a board that moved little: start every chessboard corner where
    /// <paramref name="predicted"/> puts it, refine it at full resolution, solve the pose, then
    /// check each marker by reading its cells where that pose puts them (border black, bits as the
    /// dictionary has them). Corners count only beside two confirmed markers, so a start point
    /// that slid to a neighbouring corner (the chessboard repeats) cannot pass: the markers there
    /// read differently. Null when fewer markers are confirmed than the last frame showed, or the
    /// pose fails; the caller then searches for markers.
    /// </summary>
    private (TrackedPose Pose, BoardDetection Detection)? FollowCorners(Mat image, RigidTransform predicted, long capturedTimestamp)
    {
        var region = BoardRegion(image, predicted, 0, 12);
        if (region is not { } rect) return null;
        LoadRegionGray(image, rect);

        var pxPerMm = MarkerSidePx(predicted) / _board.Spec.MarkerMm;
        if (!(pxPerMm > 0)) return null;
        var half = SubPixHalfWindow(_board.Spec, pxPerMm);
        var ids = new List<int>(_board.CornerCount);
        var starts = new List<Point2f>(_board.CornerCount);
        for (var id = 0; id < _board.CornerCount; id++)
        {
            var (a, b) = _cornerMarkers[id];
            if (a < 0 || b < 0) continue;
            var pC = predicted.Apply(_board.CornerInHead(id));
            if (!(pC.Z > 0)) return null;
            var px = _intrinsics.Project(pC);
            var u = px.X - rect.X;
            var v = px.Y - rect.Y;
            if (u < half + 1 || v < half + 1 || u > rect.Width - half - 2 || v > rect.Height - half - 2) continue;
            ids.Add(id);
            starts.Add(new Point2f((float)u, (float)v));
        }
        if (ids.Count < Math.Max(4, _options.MinCorners)) return null;
        var refined = Cv2.CornerSubPix(_regionGray, starts, new Size(half, half), new Size(-1, -1), new TermCriteria(CriteriaTypes.Count | CriteriaTypes.Eps, CornerSubPixMaxIterations, CornerSubPixEps));
        // A true saddle point pulls cornerSubPix back from any side; a start that was too far off
        // for its window can stop on a single edge (free to slide along it) having hardly moved.
        // Restart each corner a little off its result, alternately along x and y, and keep it only
        // when it comes back.
        var offset = Math.Max(1.5f, half / 4f);
        var restarts = new Point2f[refined.Length];
        for (var i = 0; i < refined.Length; i++) restarts[i] = i % 2 == 0 ? new Point2f(refined[i].X + offset, refined[i].Y) : new Point2f(refined[i].X, refined[i].Y + offset);
        var again = Cv2.CornerSubPix(_regionGray, restarts, new Size(half, half), new Size(-1, -1), new TermCriteria(CriteriaTypes.Count | CriteriaTypes.Eps, CornerSubPixMaxIterations, CornerSubPixEps));
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
        var first = Solve(noMarkers, capturedTimestamp, predicted);
        if (first is null) return null;

        var confirmed = new bool[_board.MarkerCount];
        var confirmedCount = 0;
        for (var m = 0; m < _board.MarkerCount; m++)
        {
            confirmed[m] = MarkerReadsRight(first.CameraFromHead, m, rect);
            if (confirmed[m]) confirmedCount++;
        }
        if (confirmedCount < Math.Max(_lastMarkers, 2)) return null;

        var finalIds = new List<int>(keptIds.Count);
        var finalCorners = new List<Point2f>(keptIds.Count);
        for (var i = 0; i < keptIds.Count; i++)
        {
            var (a, b) = _cornerMarkers[keptIds[i]];
            if (!confirmed[a] || !confirmed[b]) continue;
            finalIds.Add(keptIds[i]);
            finalCorners.Add(kept[i]);
        }
        var markerIds = Enumerable.Range(0, _board.MarkerCount).Where(m => confirmed[m]).ToArray();
        var markerCorners = markerIds.Select(m => _markerCornersH[m].Select(c => ToPoint2f(_intrinsics.Project(first.CameraFromHead.Apply(c)))).ToArray()).ToArray();
        var detection = new BoardDetection(markerCorners, markerIds, [.. finalCorners], [.. finalIds]);
        var pose = finalIds.Count == keptIds.Count ? first with { MarkersSeen = confirmedCount } : Solve(detection, capturedTimestamp, first.CameraFromHead);
        return pose is null ? null : (pose, detection);
    }

    private static Point2f ToPoint2f(Point2d p) => new((float)p.X, (float)p.Y);

    /// <summary>
    /// Reads marker <paramref name="marker"/>'s cells (border included) where <paramref name="pose"/> puts them
    /// (a few samples around each cell centre) and compares them with the dictionary's pattern,
    /// thresholding halfway between the black border and the white margin around the marker. At
    /// most one cell may disagree (noise); the contrast must be clear.
    /// </summary>
    private bool MarkerReadsRight(RigidTransform pose, int marker, Rect region)
    {
        var tl = _markerCornersH[marker][0];
        var n = _cellsPerSide;
        var cell = _board.Spec.MarkerMm / n;
        var values = new double[n * n];
        double dark = 0;
        var darkCount = 0;
        for (var r = 0; r < n; r++)
        {
            for (var c = 0; c < n; c++)
            {
                var x = tl.X + ((c + 0.5) * cell);
                var y = tl.Y - ((r + 0.5) * cell);
                var sum = 0.0;
                for (var k = 0; k < 4; k++)
                {
                    var ox = (k % 2 == 0 ? -0.2 : 0.2) * cell;
                    var oy = (k < 2 ? -0.2 : 0.2) * cell;
                    var v = Sample(pose, x + ox, y + oy, region);
                    if (double.IsNaN(v)) return false;
                    sum += v;
                }
                values[(r * n) + c] = sum / 4;
                if (r == 0 || r == n - 1 || c == 0 || c == n - 1)
                {
                    dark += values[(r * n) + c];
                    darkCount++;
                }
            }
        }
        dark /= darkCount;
        // White reference: the middle of the white margin between the marker and its square's edge.
        var marginMm = (_board.Spec.SquareMm - _board.Spec.MarkerMm) / 4;
        var side = _board.Spec.MarkerMm;
        var white = 0.0;
        var whiteCount = 0;
        for (var i = 1; i <= 3; i++)
        {
            var along = side * i / 4;
            (double X, double Y)[] points = [(tl.X + along, tl.Y + marginMm), (tl.X + along, tl.Y - side - marginMm), (tl.X - marginMm, tl.Y - along), (tl.X + side + marginMm, tl.Y - along)];
            foreach (var (px, py) in points)
            {
                var v = Sample(pose, px, py, region);
                if (double.IsNaN(v)) return false;
                white += v;
                whiteCount++;
            }
        }
        white /= whiteCount;
        if (white - dark < MinMarkerContrast) return false;
        var threshold = (white + dark) / 2;
        var expected = _markerCells[marker];
        var wrong = 0;
        for (var i = 0; i < values.Length; i++)
        {
            if ((values[i] > threshold) != expected[i] && ++wrong > 1) return false;
        }
        return true;
    }

    /// <summary>Bilinear grey value at head-plane point (x, y) mm under <paramref name="pose"/>; NaN outside the region.</summary>
    private double Sample(RigidTransform pose, double xMm, double yMm, Rect region)
    {
        var pC = pose.Apply(new Vec3(xMm, yMm, 0));
        if (!(pC.Z > 0)) return double.NaN;
        var p = _intrinsics.Project(pC);
        var u = p.X - region.X;
        var v = p.Y - region.Y;
        if (!(u >= 0 && v >= 0 && u < region.Width - 1 && v < region.Height - 1)) return double.NaN;
        var x0 = (int)u;
        var y0 = (int)v;
        var fx = u - x0;
        var fy = v - y0;
        var i = (y0 * region.Width) + x0;
        var top = (_pixels[i] * (1 - fx)) + (_pixels[i + 1] * fx);
        var bottom = (_pixels[i + region.Width] * (1 - fx)) + (_pixels[i + region.Width + 1] * fx);
        return (top * (1 - fy)) + (bottom * fy);
    }

    /// <summary>Mean projected marker side under <paramref name="pose"/>, px.</summary>
    private double MarkerSidePx(RigidTransform pose)
    {
        var sum = 0.0;
        foreach (var markerH in _markerCornersH)
        {
            var previous = _intrinsics.Project(pose.Apply(markerH[3]));
            foreach (var c in markerH)
            {
                var px = _intrinsics.Project(pose.Apply(c));
                sum += Math.Sqrt(((px.X - previous.X) * (px.X - previous.X)) + ((px.Y - previous.Y) * (px.Y - previous.Y)));
                previous = px;
            }
        }
        return sum / (_markerCornersH.Length * 4);
    }

    /// <summary>The board's bounding box under <paramref name="pose"/>, grown by a fraction of its larger side plus some pixels, clipped to the image; null when too small or behind the camera.</summary>
    private Rect? BoardRegion(Mat image, RigidTransform pose, double marginFraction, double marginPx)
    {
        var halfW = _board.WidthMm / 2;
        var halfH = _board.HeightMm / 2;
        double x0 = double.MaxValue, y0 = double.MaxValue, x1 = double.MinValue, y1 = double.MinValue;
        foreach (var c in (ReadOnlySpan<Vec3>)[new(-halfW, -halfH, 0), new(halfW, -halfH, 0), new(halfW, halfH, 0), new(-halfW, halfH, 0)])
        {
            var pC = pose.Apply(c);
            if (!(pC.Z > 0)) return null;
            var px = _intrinsics.Project(pC);
            x0 = Math.Min(x0, px.X);
            y0 = Math.Min(y0, px.Y);
            x1 = Math.Max(x1, px.X);
            y1 = Math.Max(y1, px.Y);
        }
        if (!double.IsFinite(x0 + y0 + x1 + y1)) return null;
        var margin = (marginFraction * Math.Max(x1 - x0, y1 - y0)) + marginPx;
        var left = (int)Math.Max(0, Math.Floor(x0 - margin));
        var top = (int)Math.Max(0, Math.Floor(y0 - margin));
        var right = (int)Math.Min(image.Cols, Math.Ceiling(x1 + margin));
        var bottom = (int)Math.Min(image.Rows, Math.Ceiling(y1 + margin));
        if (right - left < 32 || bottom - top < 32) return null;
        return new Rect(left, top, right - left, bottom - top);
    }

    /// <summary>Grey copy of <paramref name="region"/> into _regionGray (continuous) and its bytes into _pixels.</summary>
    private void LoadRegionGray(Mat image, Rect region)
    {
        using (var sub = new Mat(image, region))
        {
            if (image.Channels() == 1) sub.CopyTo(_regionGray);
            else Cv2.CvtColor(sub, _regionGray, image.Channels() == 4 ? ColorConversionCodes.BGRA2GRAY : ColorConversionCodes.BGR2GRAY);
        }
        var n = region.Width * region.Height;
        if (_pixels.Length < n) _pixels = new byte[n];
        Marshal.Copy(_regionGray.Data, _pixels, 0, n);
    }

    private static bool[][] BuildMarkerCells(MarkerBoard board, int n)
    {
        var cells = new bool[board.MarkerCount][];
        using var image = new Mat();
        for (var id = 0; id < board.MarkerCount; id++)
        {
            // One pixel per cell: the bits inside a one-cell black border.
            board.Dictionary.GenerateImageMarker(id, n, image, 1);
            cells[id] = new bool[n * n];
            for (var r = 0; r < n; r++)
            {
                for (var c = 0; c < n; c++) cells[id][(r * n) + c] = image.At<byte>(r, c) > 127;
            }
        }
        return cells;
    }

    /// <summary>
    /// Markers and corners in a region around where <paramref name="last"/> puts the board; null
    /// when the region is unusable. Markers are found on a scaled-down grey copy of the region (most
    /// of the cost of marker detection is per contour and per candidate, so a small image with a
    /// contour-length window fitted to the expected marker size is much cheaper), then the
    /// chessboard corners are placed with a homography fitted to the markers' corners (in
    /// undistorted coordinates) and refined at full resolution like a full search's.
    /// </summary>
    private BoardDetection? DetectInRegion(Mat image, RigidTransform last)
    {
        var found = BoardRegion(image, last, _options.RegionMarginFraction, 8);
        if (found is not { } region) return null;
        var left = region.X;
        var top = region.Y;
        LoadRegionGray(image, region);

        // Marker sizes where the last pose puts them (perspective makes near ones bigger).
        double minPerimeterPx = double.MaxValue, maxPerimeterPx = 0, sumPerimeterPx = 0;
        foreach (var markerH in _markerCornersH)
        {
            var perimeter = 0.0;
            var previous = _intrinsics.Project(last.Apply(markerH[3]));
            foreach (var c in markerH)
            {
                var px = _intrinsics.Project(last.Apply(c));
                perimeter += Math.Sqrt(((px.X - previous.X) * (px.X - previous.X)) + ((px.Y - previous.Y) * (px.Y - previous.Y)));
                previous = px;
            }
            minPerimeterPx = Math.Min(minPerimeterPx, perimeter);
            maxPerimeterPx = Math.Max(maxPerimeterPx, perimeter);
            sumPerimeterPx += perimeter;
        }
        var markerSidePx = sumPerimeterPx / _markerCornersH.Length / 4;
        if (!(markerSidePx > 4)) return null;
        var scale = Math.Min(1.0, _options.TrackingMarkerSidePx / markerSidePx);
        var small = _regionGray;
        if (scale < 0.9)
        {
            Cv2.Resize(_regionGray, _regionSmall, new Size(), scale, scale, InterpolationFlags.Area);
            small = _regionSmall;
        }
        else
        {
            scale = 1;
        }
        var sx = small.Cols / (double)region.Width;
        var sy = small.Rows / (double)region.Height;

        // Most of the cost of marker detection is per candidate quad (decoding its bits), so keep
        // the candidates to the markers: a threshold window about a marker wide fills the board's
        // black squares solid (a small window leaves them hollow outlines whose holes are
        // marker-sized quads), and a contour-length window around the expected marker perimeters
        // drops the black squares (a third larger than the markers), stubble, noise and the board's
        // outline. Anything this misses sends the frame to the full search.
        var window = ((int)Math.Round(markerSidePx * scale) / 2 * 2) + 1;
        var maxSide = Math.Max(small.Cols, small.Rows);
        var parameters = new DetectorParameters
        {
            CornerRefinementMethod = CornerRefineMethod.None,
            AdaptiveThreshWinSizeMin = Math.Max(3, window),
            AdaptiveThreshWinSizeMax = Math.Max(3, window),
            AdaptiveThreshWinSizeStep = 10,
            MinMarkerPerimeterRate = minPerimeterPx * scale * 0.6 / maxSide,
            MaxMarkerPerimeterRate = maxPerimeterPx * scale * 1.15 / maxSide,
        };
        using var detector = new ArucoDetector(_board.Dictionary, parameters, new RefineParameters());
        detector.DetectMarkers(small, out var smallCorners, out var smallIds, out _);

        var seen = new bool[_board.MarkerCount];
        var markerCorners = new List<Point2f[]>(smallIds.Length);
        var markerIds = new List<int>(smallIds.Length);
        for (var i = 0; i < smallIds.Length; i++)
        {
            var id = smallIds[i];
            if (id < 0 || id >= _board.MarkerCount || seen[id] || smallCorners[i].Length != 4) continue;
            seen[id] = true;
            // Pixel centres: small pixel i spans region pixels [i/s, (i+1)/s).
            markerCorners.Add([.. smallCorners[i].Select(p => new Point2f((float)(((p.X + 0.5) / sx) - 0.5 + left), (float)(((p.Y + 0.5) / sy) - 0.5 + top)))]);
            markerIds.Add(id);
        }
        var corners = InterpolateCorners(markerCorners, markerIds, seen, region, markerSidePx / _board.Spec.MarkerMm);
        return new BoardDetection([.. markerCorners], [.. markerIds], corners.Select(c => c.Point).ToArray(), corners.Select(c => c.Id).ToArray());
    }

    /// <summary>
    /// The coarse step of the full search: markers on a scaled-down grey copy of the whole frame (one
    /// threshold window, no corner refinement: most of the cost of marker detection is per pixel and
    /// per threshold pass), the chessboard corners placed from them and refined at full resolution.
    /// Null unless every marker of the board is found.
    /// </summary>
    private BoardDetection? DetectCoarse(Mat image)
    {
        var region = new Rect(0, 0, image.Cols, image.Rows);
        LoadRegionGray(image, region);
        var scale = _options.CoarseSearchScale;
        Cv2.Resize(_regionGray, _regionSmall, new Size(), scale, scale, InterpolationFlags.Area);
        _coarseDetector ??= new ArucoDetector(_board.Dictionary, new DetectorParameters
        {
            CornerRefinementMethod = CornerRefineMethod.None,
            AdaptiveThreshWinSizeMin = _options.CoarseThresholdWindowPx,
            AdaptiveThreshWinSizeMax = _options.CoarseThresholdWindowPx,
        }, new RefineParameters());
        _coarseDetector.DetectMarkers(_regionSmall, out var smallCorners, out var smallIds, out _);
        var sx = _regionSmall.Cols / (double)region.Width;
        var sy = _regionSmall.Rows / (double)region.Height;
        var seen = new bool[_board.MarkerCount];
        var markerCorners = new List<Point2f[]>(smallIds.Length);
        var markerIds = new List<int>(smallIds.Length);
        var sideSum = 0.0;
        for (var i = 0; i < smallIds.Length; i++)
        {
            var id = smallIds[i];
            if (id < 0 || id >= _board.MarkerCount || seen[id] || smallCorners[i].Length != 4) continue;
            seen[id] = true;
            Point2f[] full = [.. smallCorners[i].Select(p => new Point2f((float)(((p.X + 0.5) / sx) - 0.5), (float)(((p.Y + 0.5) / sy) - 0.5)))];
            for (var k = 0; k < 4; k++) sideSum += full[k].DistanceTo(full[(k + 1) % 4]);
            markerCorners.Add(full);
            markerIds.Add(id);
        }
        // Only a complete view is taken from here: a board seen in part (occluded, at the edge) goes
        // to the classic search, which re-finds missed markers from the board's layout.
        if (markerIds.Count < _board.MarkerCount) return null;
        var pxPerMm = sideSum / (4 * markerIds.Count) / _board.Spec.MarkerMm;
        var corners = InterpolateCorners(markerCorners, markerIds, seen, region, pxPerMm);
        return new BoardDetection([.. markerCorners], [.. markerIds], corners.Select(c => c.Point).ToArray(), corners.Select(c => c.Id).ToArray());
    }

    /// <summary>Chessboard corners beside two seen markers, predicted from the markers and refined in the region's grey image.</summary>
    private List<(int Id, Point2f Point)> InterpolateCorners(List<Point2f[]> markerCorners, List<int> markerIds, bool[] seen, Rect region, double pxPerMm)
    {
        var result = new List<(int, Point2f)>();
        if (markerIds.Count < 2) return result;
        var boardPoints = new List<Point2d>(markerIds.Count * 4);
        var imagePoints = new Point2f[markerIds.Count * 4];
        for (var m = 0; m < markerIds.Count; m++)
        {
            for (var k = 0; k < 4; k++)
            {
                var h = _markerCornersH[markerIds[m]][k];
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

        var ids = new List<int>();
        var predicted = new List<Point2f>();
        for (var id = 0; id < _cornerMarkers.Length; id++)
        {
            var (a, b) = _cornerMarkers[id];
            if (a < 0 || b < 0 || !seen[a] || !seen[b]) continue;
            var c = _board.CornerInHead(id);
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
        var half = SubPixHalfWindow(_board.Spec, pxPerMm);
        var refined = Cv2.CornerSubPix(_regionGray, predicted, new Size(half, half), new Size(-1, -1), new TermCriteria(CriteriaTypes.Count | CriteriaTypes.Eps, CornerSubPixMaxIterations, CornerSubPixEps));
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

    /// <summary>
    /// OpenCV 4.13's CharucoDetector returns corners shifted by about +0.5 px (opencv/opencv #25539,
    /// fixed upstream after 4.13): refine them again with cornerSubPix, which converges on the true
    /// saddle point whatever the start. The window stays inside the white margin around the markers,
    /// so marker edges do not pull the corner.
    /// </summary>
    private Point2f[] RefineCorners(Mat gray, Point2f[] corners, Point2f[][] markerCorners)
    {
        var pxPerMm = PxPerMm(_board.Spec, markerCorners);
        if (!(pxPerMm > 0)) return corners;
        var half = SubPixHalfWindow(_board.Spec, pxPerMm);
        return Cv2.CornerSubPix(gray, corners, new Size(half, half), new Size(-1, -1), new TermCriteria(CriteriaTypes.Count | CriteriaTypes.Eps, CornerSubPixMaxIterations, CornerSubPixEps));
    }

    /// <summary>cornerSubPix half window: four fifths of the white margin between marker and square edge, 2..10 px.</summary>
    internal static int SubPixHalfWindow(MarkerBoardSpec spec, double pxPerMm)
    {
        var marginPx = (spec.SquareMm - spec.MarkerMm) / 2 * pxPerMm;
        return (int)Math.Clamp(Math.Floor(marginPx * 0.8), 2, 10);
    }

    /// <summary>Mean image scale at the board from the detected markers' sides, px/mm; 0 without markers.</summary>
    internal static double PxPerMm(MarkerBoardSpec spec, Point2f[][] markerCorners)
    {
        var pxPerMm = 0.0;
        var sides = 0;
        foreach (var m in markerCorners)
        {
            for (var i = 0; i < m.Length; i++)
            {
                var a = m[i];
                var b = m[(i + 1) % m.Length];
                pxPerMm += Math.Sqrt(((a.X - b.X) * (a.X - b.X)) + ((a.Y - b.Y) * (a.Y - b.Y))) / spec.MarkerMm;
                sides++;
            }
        }
        return sides == 0 ? 0 : pxPerMm / sides;
    }

    /// <summary>
    /// Where OpenCV puts the markers of a ChArUco board: in the white squares, numbered row by row
    /// from the top-left of the page; the top-left square is black, except in the legacy pattern of
    /// boards with an even number of rows (OpenCV 4.6+ CharucoBoard).
    /// </summary>
    private static (Vec3[][] MarkerCornersH, (int, int)[] CornerMarkers) BuildLayout(MarkerBoard board)
    {
        var spec = board.Spec;
        var legacy = board.Board.LegacyPattern && spec.SquaresY % 2 == 0;
        var markerAt = new int[spec.SquaresY, spec.SquaresX];
        var cornersH = new List<Vec3[]>();
        var s = spec.MarkerMm / 2;
        for (var row = 0; row < spec.SquaresY; row++)
        {
            for (var col = 0; col < spec.SquaresX; col++)
            {
                var black = legacy ? (row + 1) % 2 == col % 2 : row % 2 == col % 2;
                markerAt[row, col] = -1;
                if (black) continue;
                markerAt[row, col] = cornersH.Count;
                var centre = board.PageToHead((col + 0.5) * spec.SquareMm, (row + 0.5) * spec.SquareMm);
                cornersH.Add([centre + new Vec3(-s, s, 0), centre + new Vec3(s, s, 0), centre + new Vec3(s, -s, 0), centre + new Vec3(-s, -s, 0)]);
            }
        }
        // Inner corner (row r, col c) of the chessboard sits between squares rows r..r+1, cols c..c+1.
        var cornerMarkers = new (int, int)[(spec.SquaresY - 1) * (spec.SquaresX - 1)];
        for (var r = 0; r < spec.SquaresY - 1; r++)
        {
            for (var c = 0; c < spec.SquaresX - 1; c++)
            {
                int[] around = [markerAt[r, c], markerAt[r, c + 1], markerAt[r + 1, c], markerAt[r + 1, c + 1]];
                var markers = around.Where(m => m >= 0).ToArray();
                cornerMarkers[(r * (spec.SquaresX - 1)) + c] = markers.Length == 2 ? (markers[0], markers[1]) : (-1, -1);
            }
        }
        return ([.. cornersH], cornerMarkers);
    }

    private double ReprojectionRms(RigidTransform pose, Point3f[] objectPoints, Point2f[] imagePoints)
    {
        var sum = 0.0;
        for (var i = 0; i < objectPoints.Length; i++)
        {
            var o = objectPoints[i];
            var p = _intrinsics.Project(pose.Apply(new Vec3(o.X, o.Y, o.Z)));
            var dx = p.X - imagePoints[i].X;
            var dy = p.Y - imagePoints[i].Y;
            sum += (dx * dx) + (dy * dy);
        }
        return Math.Sqrt(sum / objectPoints.Length);
    }

    private static bool AllOnOneLine(Point3f[] points)
    {
        var a = points[0];
        var far = points.MaxBy(p => ((p.X - a.X) * (p.X - a.X)) + ((p.Y - a.Y) * (p.Y - a.Y)));
        double dx = far.X - a.X, dy = far.Y - a.Y;
        var len = Math.Sqrt((dx * dx) + (dy * dy));
        if (len < 1e-6) return true;
        // Off-line distance above a tenth of a millimetre means the points span a plane.
        return points.All(p => Math.Abs((((p.X - a.X) * dy) - ((p.Y - a.Y) * dx)) / len) < 0.1);
    }

    public void Dispose()
    {
        _detector.Dispose();
        _cameraMatrix.Dispose();
        _distortion.Dispose();
        _gray.Dispose();
        _regionGray.Dispose();
        _regionSmall.Dispose();
        _coarseDetector?.Dispose();
    }
}
