using System.Runtime.InteropServices;
using OpenCvSharp;

namespace SmpRobot.Vision.BoardPose;

/// <summary>
/// A grey copy of one rectangle of a frame at full resolution, with its bytes also in managed
/// memory so that single pixels read fast (<see cref="Bilinear"/>). Its buffers are reused from
/// frame to frame. Owns a Mat: dispose it.
/// </summary>
internal sealed class GreyRegion : IDisposable
{
    private readonly Mat _gray = new();
    private byte[] _pixels = [];

    /// <summary>The rectangle of the frame last loaded, px.</summary>
    public Rect Region { get; private set; }

    /// <summary>The grey copy (continuous, <see cref="Region"/>'s size); valid until the next <see cref="Load"/>.</summary>
    public Mat Gray => _gray;

    /// <summary>Copies <paramref name="region"/> of <paramref name="image"/> (grey, BGR or BGRA) as grey.</summary>
    public void Load(Mat image, Rect region)
    {
        CopyGrey(image, region, _gray);
        Region = region;
        var n = region.Width * region.Height;
        if (_pixels.Length < n) _pixels = new byte[n];
        Marshal.Copy(_gray.Data, _pixels, 0, n);
    }

    /// <summary>Writes <paramref name="region"/> of <paramref name="image"/> (grey, BGR or BGRA) into <paramref name="into"/> as a continuous grey image.</summary>
    public static void CopyGrey(Mat image, Rect region, Mat into)
    {
        using var sub = new Mat(image, region);
        if (image.Channels() == 1) sub.CopyTo(into);
        else Cv2.CvtColor(sub, into, image.Channels() == 4 ? ColorConversionCodes.BGRA2GRAY : ColorConversionCodes.BGR2GRAY);
    }

    /// <summary>Bilinear grey value at frame pixel (<paramref name="xPx"/>, <paramref name="yPx"/>); NaN outside the region.</summary>
    public double Bilinear(double xPx, double yPx)
    {
        var region = Region;
        var u = xPx - region.X;
        var v = yPx - region.Y;
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

    public void Dispose() => _gray.Dispose();
}
