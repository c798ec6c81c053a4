using OpenCvSharp;

namespace SmpRobot.Vision.BoardPose;

/// <summary>
/// Sub-pixel refinement of chessboard corners with cornerSubPix, sized to the board as seen: the
/// search window stays inside the white margin between a marker and its square's edge, so marker
/// edges do not pull a corner. One rule for the tracker and the intrinsics calibration.
/// </summary>
internal static class SubPixCorners
{
    private const double EpsPx = 0.001;
    private const int MaxIterations = 40;

    /// <summary>cornerSubPix half window: four fifths of the white margin between marker and square edge, 2..10 px.</summary>
    public static int HalfWindowPx(MarkerBoardSpec spec, double pxPerMm)
    {
        var marginPx = (spec.SquareMm - spec.MarkerMm) / 2 * pxPerMm;
        return (int)Math.Clamp(Math.Floor(marginPx * 0.8), 2, 10);
    }

    /// <summary>Mean image scale at the board from the detected markers' sides, px/mm; 0 without markers.</summary>
    public static double PxPerMm(MarkerBoardSpec spec, ReadOnlySpan<Point2f[]> markerCorners)
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
    /// Each corner moved to the saddle point cornerSubPix finds within ±<paramref name="halfWindowPx"/>
    /// of it in <paramref name="gray"/> (up to 40 iterations, until a step is below 0.001 px). Same
    /// order as <paramref name="corners"/>; a corner with no saddle point nearby may slide anywhere in
    /// its window, so callers check how far each one went.
    /// </summary>
    public static Point2f[] Refine(Mat gray, IEnumerable<Point2f> corners, int halfWindowPx) =>
        Cv2.CornerSubPix(gray, corners, new Size(halfWindowPx, halfWindowPx), new Size(-1, -1), new TermCriteria(CriteriaTypes.Count | CriteriaTypes.Eps, MaxIterations, EpsPx));
}
