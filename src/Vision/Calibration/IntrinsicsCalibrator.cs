using System.Globalization;
using OpenCvSharp;
using SmpRobot.Geometry;

namespace SmpRobot.Vision.Calibration;

/// <summary>Settings of <see cref="IntrinsicsCalibrator"/>.</summary>
public sealed record IntrinsicsCalibrationOptions
{
    /// <summary>A view needs at least this many corners (and at least <see cref="MinCornerFraction"/> of the board's). Default 8.</summary>
    public int MinCorners { get; init; } = 8;

    /// <summary>A view needs at least this fraction of the board's corners. Default 0.25.</summary>
    public double MinCornerFraction { get; init; } = 0.25;

    /// <summary>Fewest usable views for a solve; rejection never goes below it. Default 5.</summary>
    public int MinViews { get; init; } = 5;

    /// <summary>A view whose RMS reprojection error exceeds this factor × the median view's is rejected. Default 3.</summary>
    public double RejectFactor { get; init; } = 3.0;

    /// <summary>Views at or below this RMS error are never rejected, however small the median (px). Default 0.5.</summary>
    public double RejectFloorPx { get; init; } = 0.5;

    /// <summary>Reject-and-re-solve rounds at most. Default 3.</summary>
    public int MaxRejectRounds { get; init; } = 3;

    /// <summary>Coverage grid: columns × rows of equal image cells. Default 3 × 3.</summary>
    public int GridColumns { get; init; } = 3;

    /// <summary>Coverage grid rows. Default 3.</summary>
    public int GridRows { get; init; } = 3;

    /// <summary>A cell counts as covered once the views hold this many corners in it. Default 10.</summary>
    public int MinCornersPerCell { get; init; } = 10;

    /// <summary>Tilt coverage wants a view leaning at least this far each way (left, right, up, down), degrees. Default 15.</summary>
    public double MinTiltDeg { get; init; } = 15;

    /// <summary>
    /// Extra OpenCV calibration flags (e.g. FixK3, ZeroTangentDist, FixAspectRatio). The model stays
    /// OpenCV's five coefficients k1, k2, p1, p2, k3, so the rational, and thin-prism models
    /// are refused. Default none.
    /// </summary>
    public CalibrationFlags Flags { get; init; } = CalibrationFlags.None;
}

/// <summary>Why a view is or is not in the solution.</summary>
public enum ViewStatus
{
    /// <summary>Used in the final solve.</summary>
    Used,
    /// <summary>Rejected because its reprojection error was far above the median view's.</summary>
    RejectedHighError,
}

/// <summary>The outcome of adding one view.</summary>
/// <param name="Accepted">True when the view was kept for the solve.</param>
/// <param name="Index">Index of the kept view (-1 when refused).</param>
/// <param name="Corners">Corners detected.</param>
/// <param name="Message">What happened, for the engineer.</param>
public sealed record ViewAddResult(bool Accepted, int Index, int Corners, string Message);

/// <summary>One view in a solution.</summary>
/// <param name="Index">Index in the order views were kept.</param>
/// <param name="Name">Name given when added (file name, frame number).</param>
/// <param name="Corners">Corners used.</param>
/// <param name="Status">Used or rejected.</param>
/// <param name="RmsPx">RMS reprojection error of this view's corners, px (for a rejected view: in the round that rejected it).</param>
/// <param name="CameraFromBoard">The board's pose T_CH in this view (from the round that last included it).</param>
/// <param name="LeanRightDeg">Board normal leaning towards the image's right (+) or left (−), degrees.</param>
/// <param name="LeanDownDeg">Board normal leaning towards the image's bottom (+) or top (−), degrees.</param>
/// <param name="Reason">Why it was rejected (null when used).</param>
public sealed record ViewReport(int Index, string Name, int Corners, ViewStatus Status, double RmsPx, RigidTransform CameraFromBoard, double LeanRightDeg, double LeanDownDeg, string? Reason);

/// <summary>Which image regions and tilts the views cover, with hints for what is still missing.</summary>
/// <param name="Columns">Grid columns.</param>
/// <param name="Rows">Grid rows.</param>
/// <param name="CornersPerCell">Corners seen per cell, row-major from the top-left.</param>
/// <param name="MissingCells">Names of cells with too few corners ("top-left", "middle", ...).</param>
/// <param name="MissingTilts">Tilt directions not yet seen ("left", "right", "up", "down").</param>
/// <param name="Hints">One sentence per missing item, for the engineer.</param>
public sealed record CoverageReport(int Columns, int Rows, IReadOnlyList<int> CornersPerCell, IReadOnlyList<string> MissingCells, IReadOnlyList<string> MissingTilts, IReadOnlyList<string> Hints)
{
    /// <summary>True when every cell and every tilt direction is covered.</summary>
    public bool IsComplete => MissingCells.Count == 0 && MissingTilts.Count == 0;
}

/// <summary>The solution of an intrinsics calibration.</summary>
/// <param name="Intrinsics">Camera matrix and distortion for the calibrated image size.</param>
/// <param name="RmsPx">RMS reprojection error over all corners of the used views, px.</param>
/// <param name="Views">Every kept view with its error and status.</param>
/// <param name="Rounds">Solves run (1 + reject-and-re-solve rounds).</param>
/// <param name="Coverage">Coverage of the used views.</param>
public sealed record IntrinsicsResult(CameraIntrinsics Intrinsics, double RmsPx, IReadOnlyList<ViewReport> Views, int Rounds, CoverageReport Coverage)
{
    /// <summary>Views in the final solve.</summary>
    public int ViewsUsed => Views.Count(v => v.Status == ViewStatus.Used);

    /// <summary>Views rejected for their error.</summary>
    public int ViewsRejected => Views.Count(v => v.Status != ViewStatus.Used);
}

/// <summary>
/// Camera intrinsics from views of a ChArUco board: collect views (images or precomputed corners),
/// watch <see cref="Coverage"/> until the views cover the whole image and tilt each way, then
/// <see cref="Solve"/>: OpenCV's calibrateCamera on the board's corner positions (pinhole + k1, k2,
/// p1, p2, k3), per-view RMS errors, views far worse than the median rejected and the rest solved
/// again. Not thread-safe. Owns a detector: dispose it.
/// </summary>
public sealed class IntrinsicsCalibrator : IDisposable
{
    private static readonly string[] CellNames3 = ["top-left", "top", "top-right", "left", "middle", "right", "bottom-left", "bottom", "bottom-right"];

    private readonly MarkerBoard _board;
    private readonly IntrinsicsCalibrationOptions _options;
    private readonly List<(string Name, CharucoCorners Corners)> _views = [];
    private CharucoCornerFinder? _finder;

    /// <summary>Creates a calibrator for images of <paramref name="widthPx"/> × <paramref name="heightPx"/> showing <paramref name="board"/> (not owned).</summary>
    public IntrinsicsCalibrator(MarkerBoard board, int widthPx, int heightPx, IntrinsicsCalibrationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(board);
        ArgumentOutOfRangeException.ThrowIfLessThan(widthPx, 16);
        ArgumentOutOfRangeException.ThrowIfLessThan(heightPx, 16);
        _options = options ?? new IntrinsicsCalibrationOptions();
        const CalibrationFlags unsupported = CalibrationFlags.RationalModel | CalibrationFlags.ThinPrismModel;
        if ((_options.Flags & unsupported) != 0) throw new ArgumentException("only the five-coefficient distortion model (k1, k2, p1, p2, k3) is supported", nameof(options));
        if (_options.GridColumns < 1 || _options.GridRows < 1) throw new ArgumentException("the coverage grid needs at least one cell", nameof(options));
        _board = board;
        WidthPx = widthPx;
        HeightPx = heightPx;
    }

    /// <summary>Image width, px.</summary>
    public int WidthPx { get; }

    /// <summary>Image height, px.</summary>
    public int HeightPx { get; }

    /// <summary>Views kept so far.</summary>
    public int ViewCount => _views.Count;

    /// <summary>Corners a view needs to be kept.</summary>
    public int RequiredCorners => Math.Max(Math.Max(4, _options.MinCorners), (int)Math.Ceiling(_options.MinCornerFraction * _board.CornerCount));

    /// <summary>The last solution (null before the first <see cref="Solve"/>).</summary>
    public IntrinsicsResult? LastResult { get; private set; }

    /// <summary>Detects the board's corners in <paramref name="image"/> (which must have the calibrator's size) and keeps the view when it has enough of them.</summary>
    public ViewAddResult AddView(Mat image, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.Width != WidthPx || image.Height != HeightPx)
        {
            return new ViewAddResult(false, -1, 0, Invariant($"view '{name}': image is {image.Width}x{image.Height}, calibrating {WidthPx}x{HeightPx}"));
        }
        _finder ??= new CharucoCornerFinder(_board);
        return AddDetections(_finder.Find(image), name);
    }

    /// <summary>Keeps a view given by already detected corners (pixel positions with the board's corner ids) when there are enough of them and they span a plane.</summary>
    public ViewAddResult AddDetections(CharucoCorners corners, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(corners);
        name ??= "view " + _views.Count.ToString(CultureInfo.InvariantCulture);
        if (corners.CornersPx.Length != corners.CornerIds.Length) return new ViewAddResult(false, -1, 0, $"view '{name}': corner and id counts differ");
        var distinct = corners.CornerIds.Distinct().Count();
        if (distinct != corners.CornerIds.Length || corners.CornerIds.Any(id => id < 0 || id >= _board.CornerCount))
        {
            return new ViewAddResult(false, -1, corners.Count, $"view '{name}': corner ids are repeated or not on this board");
        }
        if (corners.Count < RequiredCorners)
        {
            return new ViewAddResult(false, -1, corners.Count, Invariant($"view '{name}': {corners.Count} corners found, {RequiredCorners} needed (board blurred, too small, too steep or mostly outside the image?)"));
        }
        if (Collinear(corners.CornerIds))
        {
            return new ViewAddResult(false, -1, corners.Count, $"view '{name}': the corners found lie on one line");
        }
        if (corners.CornersPx.Any(p => !float.IsFinite(p.X) || !float.IsFinite(p.Y) || p.X < -0.5 || p.Y < -0.5 || p.X > WidthPx - 0.5 || p.Y > HeightPx - 0.5))
        {
            return new ViewAddResult(false, -1, corners.Count, $"view '{name}': corners outside the image");
        }
        _views.Add((name, corners));
        return new ViewAddResult(true, _views.Count - 1, corners.Count, Invariant($"view '{name}': {corners.Count} corners kept ({_views.Count} views)"));
    }

    /// <summary>Forgets every view and the last solution.</summary>
    public void Clear()
    {
        _views.Clear();
        LastResult = null;
    }

    /// <summary>
    /// Coverage of the kept views: corners per grid cell and the tilt directions seen. Tilts need a
    /// camera model: <paramref name="intrinsics"/>, else the last solution, else a rough guess (focal
    /// length = image width, centred, no distortion), which is good enough to tell directions apart.
    /// </summary>
    public CoverageReport Coverage(CameraIntrinsics? intrinsics = null)
    {
        var k = intrinsics ?? LastResult?.Intrinsics ?? new CameraIntrinsics(WidthPx, HeightPx, WidthPx, WidthPx, (WidthPx - 1) / 2.0, (HeightPx - 1) / 2.0, [0, 0, 0, 0, 0]);
        var leans = new List<(double Right, double Down)>();
        foreach (var (_, corners) in _views)
        {
            var pose = SolvePose(k, corners);
            if (pose is { } p) leans.Add(Lean(p));
        }
        return BuildCoverage(_views.Select(v => v.Corners), leans);
    }

    /// <summary>
    /// Solves the intrinsics from the kept views, rejects views whose error is above
    /// max(<see cref="IntrinsicsCalibrationOptions.RejectFactor"/> × median, <see cref="IntrinsicsCalibrationOptions.RejectFloorPx"/>)
    /// and solves again (at most <see cref="IntrinsicsCalibrationOptions.MaxRejectRounds"/> times, never below
    /// <see cref="IntrinsicsCalibrationOptions.MinViews"/> views). Throws InvalidOperationException when there are too few views.
    /// </summary>
    public IntrinsicsResult Solve()
    {
        var minViews = Math.Max(3, _options.MinViews);
        if (_views.Count < minViews)
        {
            throw new InvalidOperationException($"intrinsics calibration needs at least {minViews} views, has {_views.Count}");
        }
        var active = Enumerable.Range(0, _views.Count).ToList();
        var rejected = new Dictionary<int, (double RmsPx, RigidTransform Pose, string Reason)>();
        var rounds = 0;
        while (true)
        {
            rounds++;
            var (k, poses) = Calibrate(active);
            var errors = active.Select((v, j) => ViewRms(k, poses[j], _views[v].Corners)).ToArray();
            var median = Median(errors);
            var limit = Math.Max(_options.RejectFactor * median, _options.RejectFloorPx);
            var bad = Enumerable.Range(0, active.Count).Where(j => errors[j] > limit).ToList();
            if (bad.Count == 0 || rounds > _options.MaxRejectRounds || active.Count - bad.Count < minViews)
            {
                var reports = new List<ViewReport>();
                for (var v = 0; v < _views.Count; v++)
                {
                    var j = active.IndexOf(v);
                    if (j >= 0)
                    {
                        var (right, down) = Lean(poses[j]);
                        reports.Add(new ViewReport(v, _views[v].Name, _views[v].Corners.Count, ViewStatus.Used, errors[j], poses[j], right, down, null));
                    }
                    else
                    {
                        var r = rejected[v];
                        var (right, down) = Lean(r.Pose);
                        reports.Add(new ViewReport(v, _views[v].Name, _views[v].Corners.Count, ViewStatus.RejectedHighError, r.RmsPx, r.Pose, right, down, r.Reason));
                    }
                }
                var sumSq = 0.0;
                var n = 0;
                for (var j = 0; j < active.Count; j++)
                {
                    var c = _views[active[j]].Corners.Count;
                    sumSq += errors[j] * errors[j] * c;
                    n += c;
                }
                var coverage = BuildCoverage(active.Select(v => _views[v].Corners), [.. active.Select((_, j) => Lean(poses[j]))]);
                LastResult = new IntrinsicsResult(k, Math.Sqrt(sumSq / n), reports, rounds, coverage);
                return LastResult;
            }
            foreach (var j in bad)
            {
                rejected[active[j]] = (errors[j], poses[j], Invariant($"RMS {errors[j]:0.00} px > {limit:0.00} px ({_options.RejectFactor:0.#} x median {median:0.000} px): blurred, moved during exposure or mis-detected"));
            }
            active = [.. active.Where((_, j) => !bad.Contains(j))];
        }
    }

    private (CameraIntrinsics K, RigidTransform[] Poses) Calibrate(List<int> viewIndices)
    {
        var objectPoints = viewIndices.Select(v => ObjectPoints(_views[v].Corners)).ToList();
        var imagePoints = viewIndices.Select(v => (IEnumerable<Point2f>)_views[v].Corners.CornersPx).ToList();
        var cameraMatrix = new double[3, 3];
        var distortion = new double[5];
        Cv2.CalibrateCamera(objectPoints, imagePoints, new Size(WidthPx, HeightPx), cameraMatrix, distortion, out var rvecs, out var tvecs,
            _options.Flags, new TermCriteria(CriteriaTypes.Count | CriteriaTypes.Eps, 100, 1e-12));
        var k = new CameraIntrinsics(WidthPx, HeightPx, cameraMatrix[0, 0], cameraMatrix[1, 1], cameraMatrix[0, 2], cameraMatrix[1, 2], [.. distortion]);
        var poses = new RigidTransform[viewIndices.Count];
        for (var j = 0; j < poses.Length; j++)
        {
            poses[j] = Rotations.FromRotationVector(new Vec3(rvecs[j].Item0, rvecs[j].Item1, rvecs[j].Item2), new Vec3(tvecs[j].Item0, tvecs[j].Item1, tvecs[j].Item2));
        }
        return (k, poses);
    }

    private List<Point3f> ObjectPoints(CharucoCorners corners) =>
        [.. corners.CornerIds.Select(id => _board.CornerInHead(id)).Select(p => new Point3f((float)p.X, (float)p.Y, (float)p.Z))];

    private double ViewRms(CameraIntrinsics k, RigidTransform pose, CharucoCorners corners)
    {
        var sum = 0.0;
        for (var i = 0; i < corners.Count; i++)
        {
            var p = k.Project(pose.Apply(_board.CornerInHead(corners.CornerIds[i])));
            var dx = p.X - corners.CornersPx[i].X;
            var dy = p.Y - corners.CornersPx[i].Y;
            sum += (dx * dx) + (dy * dy);
        }
        return Math.Sqrt(sum / corners.Count);
    }

    private RigidTransform? SolvePose(CameraIntrinsics k, CharucoCorners corners)
    {
        var rvec = new double[3];
        var tvec = new double[3];
        Cv2.SolvePnP(ObjectPoints(corners), corners.CornersPx, k.CameraMatrixArray(), [.. k.Distortion], ref rvec, ref tvec, false, SolvePnPMethod.IPPE);
        var pose = Rotations.FromRotationVector(new Vec3(rvec[0], rvec[1], rvec[2]), new Vec3(tvec[0], tvec[1], tvec[2]));
        return pose.Translation.IsFinite ? pose : null;
    }

    /// <summary>How the board's normal (its Z, towards the camera) leans in the image: right (+x) and down (+y), degrees.</summary>
    private static (double Right, double Down) Lean(RigidTransform cameraFromBoard)
    {
        var n = cameraFromBoard.Apply(new Vec3(0, 0, 1)) - cameraFromBoard.Translation;
        var towards = Math.Max(1e-9, -n.Z);
        return (Math.Atan2(n.X, towards) * 180 / Math.PI, Math.Atan2(n.Y, towards) * 180 / Math.PI);
    }

    private CoverageReport BuildCoverage(IEnumerable<CharucoCorners> views, IReadOnlyList<(double Right, double Down)> leans)
    {
        int cols = _options.GridColumns, rows = _options.GridRows;
        var counts = new int[cols * rows];
        foreach (var corners in views)
        {
            foreach (var p in corners.CornersPx)
            {
                var c = Math.Clamp((int)(p.X / WidthPx * cols), 0, cols - 1);
                var r = Math.Clamp((int)(p.Y / HeightPx * rows), 0, rows - 1);
                counts[(r * cols) + c]++;
            }
        }
        var missingCells = new List<string>();
        var hints = new List<string>();
        for (var i = 0; i < counts.Length; i++)
        {
            if (counts[i] >= _options.MinCornersPerCell) continue;
            var cellName = cols == 3 && rows == 3 ? CellNames3[i] : Invariant($"row {(i / cols) + 1} column {(i % cols) + 1}");
            missingCells.Add(cellName);
            hints.Add(Invariant($"Show the board in the {cellName} of the image ({counts[i]} of {_options.MinCornersPerCell} corners so far)."));
        }
        var t = _options.MinTiltDeg;
        var missingTilts = new List<string>();
        void Want(string direction, bool seen, string how)
        {
            if (seen) return;
            missingTilts.Add(direction);
            hints.Add(Invariant($"Tilt the board at least {t:0.#}° so that its face turns towards the {direction} of the image ({how})."));
        }
        Want("left", leans.Any(l => l.Right <= -t), "turn it about the vertical axis");
        Want("right", leans.Any(l => l.Right >= t), "turn it about the vertical axis");
        Want("top", leans.Any(l => l.Down <= -t), "turn it about the horizontal axis");
        Want("bottom", leans.Any(l => l.Down >= t), "turn it about the horizontal axis");
        return new CoverageReport(cols, rows, counts, missingCells, missingTilts, hints);
    }

    private bool Collinear(int[] ids)
    {
        var points = ids.Select(_board.CornerInHead).ToArray();
        var a = points[0];
        var far = points.MaxBy(p => p.DistanceTo(a));
        var d = far - a;
        var len = d.Length;
        if (len < 1e-9) return true;
        return points.All(p => Math.Abs((((p.X - a.X) * d.Y) - ((p.Y - a.Y) * d.X)) / len) < 0.1);
    }

    private static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        var m = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    public void Dispose() => _finder?.Dispose();
}
