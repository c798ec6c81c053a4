using OpenCvSharp;
using SmpRobot.Geometry;

namespace SmpRobot.Vision.BoardPose;

/// <summary>The markers' sizes in an image (perspective makes near ones bigger).</summary>
/// <param name="MinPerimeterPx">Smallest projected marker perimeter, px.</param>
/// <param name="MaxPerimeterPx">Largest projected marker perimeter, px.</param>
/// <param name="MeanSidePx">Mean projected marker side, px.</param>
internal readonly record struct ProjectedMarkerSizes(double MinPerimeterPx, double MaxPerimeterPx, double MeanSidePx);

/// <summary>
/// Where the parts of a ChArUco board are in the head frame H, as OpenCV lays them out, and where
/// a pose puts them in an image: each marker's four corners (page order: top-left, top-right,
/// bottom-right, bottom-left, as the detector reports them), the two markers beside each chessboard
/// corner (a corner is placed only when both are seen, as OpenCV's minMarkers = 2), and each
/// marker's cells. Immutable after construction.
/// </summary>
internal sealed class BoardLayout
{
    private readonly Vec3[][] _markerCornersH;
    private readonly (int A, int B)[] _cornerMarkers;
    // Each marker's cells (a one-cell black border around the dictionary's bits: 6×6 for 4×4
    // markers, 7×7 for 5×5), row by row from the top-left, true = white, as the dictionary draws them.
    private readonly bool[][] _markerCells;

    public BoardLayout(MarkerBoard board)
    {
        ArgumentNullException.ThrowIfNull(board);
        Board = board;
        (_markerCornersH, _cornerMarkers) = BuildLayout(board);
        CellsPerSide = board.Dictionary.MarkerSize + 2;
        _markerCells = BuildMarkerCells(board, CellsPerSide);
    }

    /// <summary>The board laid out.</summary>
    public MarkerBoard Board { get; }

    /// <summary>Markers on the board (ids 0..MarkerCount-1).</summary>
    public int MarkerCount => Board.MarkerCount;

    /// <summary>Cells along a marker's side, its black border included.</summary>
    public int CellsPerSide { get; }

    /// <summary>Corner <paramref name="k"/> (0..3: top-left, top-right, bottom-right, bottom-left of the page) of marker <paramref name="marker"/> in H, mm.</summary>
    public Vec3 MarkerCornerH(int marker, int k) => _markerCornersH[marker][k];

    /// <summary>The two markers beside chessboard corner <paramref name="corner"/>; (-1, -1) for a corner that does not sit between two markers.</summary>
    public (int A, int B) MarkersBesideCorner(int corner) => _cornerMarkers[corner];

    /// <summary>Marker <paramref name="marker"/>'s cells, <see cref="CellsPerSide"/> squared, row by row from the page's top-left; true = white.</summary>
    public ReadOnlySpan<bool> MarkerCells(int marker) => _markerCells[marker];

    /// <summary>
    /// The smallest and largest marker perimeters and the mean marker side where
    /// <paramref name="cameraFromHead"/> puts the markers in the image, px.
    /// </summary>
    public ProjectedMarkerSizes MarkerSizesPx(RigidTransform cameraFromHead, CameraIntrinsics intrinsics)
    {
        double minPerimeterPx = double.MaxValue, maxPerimeterPx = 0, sumPerimeterPx = 0;
        foreach (var markerH in _markerCornersH)
        {
            var perimeterPx = 0.0;
            var previous = intrinsics.Project(cameraFromHead.Apply(markerH[3]));
            foreach (var c in markerH)
            {
                var px = intrinsics.Project(cameraFromHead.Apply(c));
                perimeterPx += Math.Sqrt(((px.X - previous.X) * (px.X - previous.X)) + ((px.Y - previous.Y) * (px.Y - previous.Y)));
                previous = px;
            }
            minPerimeterPx = Math.Min(minPerimeterPx, perimeterPx);
            maxPerimeterPx = Math.Max(maxPerimeterPx, perimeterPx);
            sumPerimeterPx += perimeterPx;
        }
        return new ProjectedMarkerSizes(minPerimeterPx, maxPerimeterPx, sumPerimeterPx / _markerCornersH.Length / 4);
    }

    /// <summary>
    /// The board's bounding box where <paramref name="cameraFromHead"/> puts it, grown on each side
    /// by <paramref name="marginFraction"/> of its larger side plus <paramref name="marginPx"/>,
    /// clipped to the image; null when behind the camera or smaller than 32 px either way.
    /// </summary>
    public Rect? BoundsPx(RigidTransform cameraFromHead, CameraIntrinsics intrinsics, Size imageSize, double marginFraction, double marginPx)
    {
        var halfW = Board.WidthMm / 2;
        var halfH = Board.HeightMm / 2;
        double x0 = double.MaxValue, y0 = double.MaxValue, x1 = double.MinValue, y1 = double.MinValue;
        foreach (var c in (ReadOnlySpan<Vec3>)[new(-halfW, -halfH, 0), new(halfW, -halfH, 0), new(halfW, halfH, 0), new(-halfW, halfH, 0)])
        {
            var pC = cameraFromHead.Apply(c);
            if (!(pC.Z > 0)) return null;
            var px = intrinsics.Project(pC);
            x0 = Math.Min(x0, px.X);
            y0 = Math.Min(y0, px.Y);
            x1 = Math.Max(x1, px.X);
            y1 = Math.Max(y1, px.Y);
        }
        if (!double.IsFinite(x0 + y0 + x1 + y1)) return null;
        var margin = (marginFraction * Math.Max(x1 - x0, y1 - y0)) + marginPx;
        var left = (int)Math.Max(0, Math.Floor(x0 - margin));
        var top = (int)Math.Max(0, Math.Floor(y0 - margin));
        var right = (int)Math.Min(imageSize.Width, Math.Ceiling(x1 + margin));
        var bottom = (int)Math.Min(imageSize.Height, Math.Ceiling(y1 + margin));
        if (right - left < 32 || bottom - top < 32) return null;
        return new Rect(left, top, right - left, bottom - top);
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
}
