using SkiaSharp;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Preview;

namespace SmpRobot.Tests.Treatment;

/// <summary>The registration's picture: each probe drawn where it touched, coloured by its residual.</summary>
public sealed class SurfacePictureTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("smp-surface-picture-").FullName;

    [Fact]
    public void Each_probe_is_drawn_where_it_touched_red_outside_blue_inside_white_on_the_surface()
    {
        var contacts = new List<PictureContact>
        {
            new(1, new Vec3(0, 0, 0), new Vec3(0, 0, 0), 0.0, true),
            new(2, new Vec3(10, 0, 0), new Vec3(10, 0, 0), 0.15, true),
            new(3, new Vec3(0, 10, 0), new Vec3(0, 10, 0), -0.15, true),
            new(4, new Vec3(10, 10, 0), new Vec3(10, 10, 0), 0.9, false),
        };
        var path = Path.Combine(_dir, "registration.png");

        SurfacePicture.WritePng(contacts, "surface registration r-test", "valid: 3 of 4 contacts", 0.15, path);

        using var bitmap = SKBitmap.Decode(path);
        Assert.Equal(720, bitmap.Width);
        // 10 mm span over 640 px; X right, Y up, centred: (0,0) bottom left, (10,10) top right.
        SKColor At(double x, double y) => bitmap.GetPixel((int)Math.Round(360 + ((x - 5) * 64)), (int)Math.Round(70 + 360 - ((y - 5) * 64)));
        Assert.Equal(new SKColor(255, 255, 255), At(0, 0));
        var red = At(10, 0);
        Assert.True(red.Red == 255 && red.Green < 10 && red.Blue < 10, $"{red}");
        var blue = At(0, 10);
        Assert.True(blue.Blue == 255 && blue.Red < 10, $"{blue}");
        // The outlier is crossed: the cross's black line runs through its centre.
        var crossed = At(10, 10);
        Assert.True(crossed.Red < 60 && crossed.Green < 60 && crossed.Blue < 60, $"{crossed}");
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
