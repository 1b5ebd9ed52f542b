/// The country whose national numbers need no prefix (`validate.home_country`).
public struct HomeCountry: Sendable, Equatable {
    public let iso: String
    /// ITU calling code digits, e.g. "91".
    public let callingCode: String
    /// Digits of a national significant number when the plan is fixed-length (India: 10),
    /// nil where lengths vary and only the generic E.164 rule applies.
    public let nationalLength: Int?

    /// nil when the ISO code is not one smsbatch knows.
    public init?(iso: String) {
        let key = iso.uppercased()
        guard let code = HomeCountry.callingCodes[key] else { return nil }
        self.iso = key
        self.callingCode = code
        self.nationalLength = key == "IN" ? 10 : nil
    }

    /// ISO 3166 alpha-2 → calling code, for the countries an operator is likely to name.
    static let callingCodes: [String: String] = [
        "IN": "91", "US": "1", "CA": "1", "GB": "44", "IE": "353", "FR": "33", "DE": "49",
        "ES": "34", "IT": "39", "NL": "31", "BE": "32", "LU": "352", "CH": "41", "AT": "43",
        "PT": "351", "SE": "46", "NO": "47", "DK": "45", "FI": "358", "PL": "48", "CZ": "420",
        "GR": "30", "TR": "90", "RU": "7", "UA": "380", "RO": "40", "HU": "36", "AE": "971",
        "SA": "966", "QA": "974", "KW": "965", "OM": "968", "BH": "973", "IL": "972",
        "EG": "20", "ZA": "27", "NG": "234", "KE": "254", "GH": "233", "MA": "212",
        "PK": "92", "BD": "880", "LK": "94", "NP": "977", "CN": "86", "HK": "852", "JP": "81",
        "KR": "82", "SG": "65", "MY": "60", "TH": "66", "ID": "62", "PH": "63", "VN": "84",
        "AU": "61", "NZ": "64", "BR": "55", "MX": "52", "AR": "54", "CL": "56", "CO": "57",
        "PE": "51",
    ]
}
