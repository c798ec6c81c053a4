using SmpRobot.Geometry;

namespace SmpRobot.Vision.BoardPose;

/// <summary>
/// Checks that a marker is where a pose puts it by reading its cells there, without searching:
/// a few samples around each cell's centre (border included), thresholded halfway between the
/// black border and the white margin around the marker, compared with the dictionary's pattern.
/// Because neighbouring markers read differently, this tells a pose from one shifted by a square
/// (the chessboard's corners alone repeat).
/// </summary>
internal sealed class MarkerReader
{
    // Grey levels between a marker's black border and the white around it, below which its cells are not read.
    private const double MinMarkerContrast = 20;

    private readonly BoardLayout _layout;
    private readonly CameraIntrinsics _intrinsics;

    public MarkerReader(BoardLayout layout, CameraIntrinsics intrinsics)
    {
        _layout = layout;
        _intrinsics = intrinsics;
    }

    /// <summary>
    /// True when marker <paramref name="marker"/> reads right where <paramref name="cameraFromHead"/>
    /// puts it in <paramref name="frame"/>: clear contrast, and at most one cell that disagrees
    /// (noise). False when any sample falls outside the region or behind the camera.
    /// </summary>
    public bool ReadsRight(GreyRegion frame, RigidTransform cameraFromHead, int marker)
    {
        var spec = _layout.Board.Spec;
        var tl = _layout.MarkerCornerH(marker, 0);
        var n = _layout.CellsPerSide;
        var cell = spec.MarkerMm / n;
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
                    var v = Sample(frame, cameraFromHead, x + ox, y + oy);
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
        var marginMm = (spec.SquareMm - spec.MarkerMm) / 4;
        var side = spec.MarkerMm;
        var white = 0.0;
        var whiteCount = 0;
        for (var i = 1; i <= 3; i++)
        {
            var along = side * i / 4;
            (double X, double Y)[] points = [(tl.X + along, tl.Y + marginMm), (tl.X + along, tl.Y - side - marginMm), (tl.X - marginMm, tl.Y - along), (tl.X + side + marginMm, tl.Y - along)];
            foreach (var (px, py) in points)
            {
                var v = Sample(frame, cameraFromHead, px, py);
                if (double.IsNaN(v)) return false;
                white += v;
                whiteCount++;
            }
        }
        white /= whiteCount;
        if (white - dark < MinMarkerContrast) return false;
        var threshold = (white + dark) / 2;
        var expected = _layout.MarkerCells(marker);
        var wrong = 0;
        for (var i = 0; i < values.Length; i++)
        {
            if ((values[i] > threshold) != expected[i] && ++wrong > 1) return false;
        }
        return true;
    }

    /// <summary>Grey value at head-plane point (x, y) mm under the pose; NaN outside the region or behind the camera.</summary>
    private double Sample(GreyRegion frame, RigidTransform cameraFromHead, double xMm, double yMm)
    {
        var pC = cameraFromHead.Apply(new Vec3(xMm, yMm, 0));
        if (!(pC.Z > 0)) return double.NaN;
        var p = _intrinsics.Project(pC);
        return frame.Bilinear(p.X, p.Y);
    }
}
