/// Text the generator draws from. `#` in a phrase becomes a random digit.
enum Vocabulary {
    /// A phrase as bytes with its length in Unicode scalars.
    struct Phrase: Sendable {
        let bytes: [UInt8]
        let scalars: Int
        init(_ s: String) {
            bytes = Array(s.utf8)
            scalars = s.unicodeScalars.count
        }
    }

    /// GSM 03.38 basic characters only, so a long run of these counts 1 septet per character.
    static let english: [Phrase] = [
        "Dear customer,", "Hi Priya,", "Dear Rahul,", "Hello,", "Your OTP for login is ######.",
        "Do not share it with anyone, not even bank staff.", "Your order OD4########## has been shipped.",
        "Track it at https://mbtx.in/t/#####.", "Use code \"SAVE##\" to get ##% off.",
        "Flat Rs. 1## off on orders above Rs. 1,###.", "Offer valid till 31/12/2026.", "T&C apply.",
        "Your a/c XX#### is debited by INR 2,###.## on 25-11-26.", "Avl bal: INR 4#,###.##.",
        "Not you? Call 1800-###-####.", "Thank you for shopping with us.",
        "Your appointment is confirmed for 11:#0 on 1#/12.", "To opt out, reply STOP to 9#######.",
        "Regards,", "Team MobTexting", "Your bill of Rs. 7## is due on 2#/12.",
        "Pay now: https://mbtx.in/p/######", "\"Big Billion Days\" are here,", "Hurry, limited stock!",
        "Your refund of Rs. 3## has been processed; it will reflect in 5-7 working days.",
        "Your cab is arriving in # min.", "Driver: Ramesh, +91 98###-#####.", "Thanks,",
        "Your password was changed at 1#:#5 IST.", "If this wasn't you, contact support.",
        "Your \"Gold\" plan renews on 1#/01.", "Recharge of Rs. 2## successful, validity 28 days.",
    ].map(Phrase.init)

    static let hindi: [Phrase] = [
        "प्रिय ग्राहक,", "नमस्ते,", "आपका ओटीपी ###### है।", "इसे किसी के साथ साझा न करें।",
        "आपका ऑर्डर OD4########## भेज दिया गया है।", "कोड \"DIWALI##\" से ##% छूट पाएं,",
        "ऑफर 31/12 तक मान्य है।", "आपके खाते XX#### से रु. 1,### कटे हैं।", "शेष राशि: रु. 3#,###.##",
        "सहायता के लिए 1800-###-#### पर कॉल करें।", "धन्यवाद,", "टीम मोबटेक्स्टिंग",
        "आपका बिल रु. 5## है, अंतिम तिथि 2#/12।", "अभी भुगतान करें: https://mbtx.in/p/######",
        "नियम व शर्तें लागू।", "आपकी अपॉइंटमेंट 1#:30 बजे पक्की है।", "आपका रिचार्ज सफल रहा, वैधता 28 दिन।",
        "आपका पासवर्ड बदल दिया गया है।", "आपकी डिलीवरी आज शाम तक होगी।", "बिजली बिल का भुगतान समय पर करें।",
    ].map(Phrase.init)

    /// DLT headers (T and S): 6 capital letters.
    static let headers: [[UInt8]] = [
        "MOBTXT", "HDFCBK", "ICICIB", "AXISBK", "AMAZON", "FLPKRT", "SWIGGY", "ZOMATO",
        "PAYTMB", "AIRTEL", "JIOINF", "IRCTCI", "SBIINB", "KOTAKB", "MYNTRA", "OLACAB",
    ].map { Array($0.utf8) }

    /// Promotional senders (P): 6 digits.
    static let numericSenders: [[UInt8]] = ["567890", "611234", "598765", "700101", "512345"]
        .map { Array($0.utf8) }

    /// Senders that break the T rule: wrong case, length, or characters.
    static let badHeaders: [[UInt8]] = ["mobtxt", "MOBTX", "MOBTXT1", "MOB-TX", "MOB TX", "123456"]
        .map { Array($0.utf8) }

    static let badProducts: [[UInt8]] = ["X", "SMS", "TX", "Q1"].map { Array($0.utf8) }

    static let badSchedules: [[UInt8]] = ["someday", "tomorrow 9am", "next week", "ASAP"]
        .map { Array($0.utf8) }

    /// Not 11–19 digits.
    static let badDLTIds: [[UInt8]] = ["12345", "DLT-1107", "11071612345678901234", "1107 1612 3456"]
        .map { Array($0.utf8) }

    static let foreign: [[UInt8]] = ["+447911123456", "+44 7911 123456", "00447911123456"]
        .map { Array($0.utf8) }

    static let header: [[UInt8]] = [
        "recipient", "sender", "message", "product", "schedule_at", "template_id", "entity_id", "ref",
    ].map { Array($0.utf8) }
}
