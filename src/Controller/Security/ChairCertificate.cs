using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace SmpRobot.Controller.Security;

/// <summary>A chair's key, its self-signed certificate and a signing request, as PEM.</summary>
public sealed record ChairCertificate(string CertificatePem, string KeyPem, string SigningRequestPem)
{
    /// <summary>
    /// ECDSA P-256; the certificate names localhost, 127.0.0.1, ::1 and <paramref name="hosts"/> (the first host, else
    /// localhost, as its subject) for server authentication, valid from five minutes ago for <paramref name="days"/>.
    /// </summary>
    public static ChairCertificate Create(IReadOnlyList<string> hosts, int days)
    {
        if (days < 1) throw new ArgumentException("--days must be at least 1");
        var names = hosts.Where(h => h.Length > 0).ToList();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={(names.Count > 0 ? names[0] : "localhost")}, O=SmpRobot chair", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        san.AddIpAddress(IPAddress.IPv6Loopback);
        foreach (var h in names)
        {
            if (IPAddress.TryParse(h, out var ip)) san.AddIpAddress(ip);
            else san.AddDnsName(h);
        }
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var now = DateTimeOffset.UtcNow;
        using var certificate = request.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(days));
        return new ChairCertificate(certificate.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem(), request.CreateSigningRequestPem());
    }
}
