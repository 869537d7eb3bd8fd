"""Writes catalogue.csv: 300 made-up products, 10 departments x 10 products x 3 variants, the
same file every run. Run it only to change the catalogue; the CSV is committed."""
import csv
from pathlib import Path

# department: (variants, [(product, what it is for), ...])
DEPARTMENTS = {
    "kitchen": (["stainless steel", "non-stick", "compact"], [
        ("chef's knife", "slicing vegetables, meat and herbs"),
        ("frying pan", "searing steak and frying eggs"),
        ("saucepan", "boiling pasta, rice and sauces"),
        ("cutting board", "chopping food without dulling knives"),
        ("espresso machine", "brewing strong coffee at home"),
        ("electric kettle", "boiling water for tea in minutes"),
        ("blender", "smoothies, soups and crushed ice"),
        ("toaster", "crisp toast and bagels for breakfast"),
        ("mixing bowl set", "whisking batter and kneading dough"),
        ("baking tray", "roasting vegetables and baking cookies"),
    ]),
    "camping": (["lightweight", "waterproof", "family-size"], [
        ("tent", "shelter for nights outdoors in the wilderness"),
        ("sleeping bag", "staying warm while sleeping outdoors"),
        ("hiking boots", "walking rough mountain trails"),
        ("backpack", "carrying gear on multi-day hikes"),
        ("camping stove", "cooking meals at the campsite"),
        ("headlamp", "light for night hiking and the tent"),
        ("trekking poles", "balance on steep trails"),
        ("water filter", "safe drinking water from streams"),
        ("rain jacket", "staying dry on wet hikes"),
        ("camping chair", "sitting by the campfire"),
    ]),
    "garden": (["heavy-duty", "ergonomic", "expandable"], [
        ("garden hose", "watering lawns and flower beds"),
        ("pruning shears", "cutting back roses and shrubs"),
        ("watering can", "watering potted plants"),
        ("plant pots", "growing herbs and flowers on a balcony"),
        ("lawn mower", "cutting the grass in the yard"),
        ("seed tray", "starting vegetable seedlings in spring"),
        ("compost bin", "turning kitchen scraps into soil"),
        ("leaf rake", "clearing fallen leaves in autumn"),
        ("hand trowel", "digging holes for bulbs and plants"),
        ("gardening gloves", "protecting hands from thorns and dirt"),
    ]),
    "electronics": (["wireless", "fast-charging", "portable"], [
        ("headphones", "listening to music with noise cancelling"),
        ("bluetooth speaker", "playing music at a party"),
        ("phone charger", "charging a smartphone quickly"),
        ("usb-c cable", "connecting and charging laptops and phones"),
        ("laptop stand", "raising a laptop screen to eye level"),
        ("webcam", "video calls and streaming"),
        ("mechanical keyboard", "typing and gaming on a computer"),
        ("computer mouse", "pointing and clicking on a desktop"),
        ("power bank", "charging devices while travelling"),
        ("smartwatch", "tracking steps, heart rate and notifications"),
    ]),
    "baby": (["organic", "hypoallergenic", "travel"], [
        ("stroller", "pushing an infant on walks"),
        ("baby bottle", "feeding milk to a newborn"),
        ("diapers", "keeping a baby dry day and night"),
        ("baby monitor", "hearing and watching a sleeping baby"),
        ("crib sheet", "a soft bed for a sleeping infant"),
        ("teething toy", "soothing a baby's sore gums"),
        ("high chair", "seating a toddler at mealtimes"),
        ("baby carrier", "carrying an infant hands-free"),
        ("bibs", "catching spills when a baby eats"),
        ("baby wipes", "gentle cleaning at changing time"),
    ]),
    "pets": (["grain-free", "chew-resistant", "washable"], [
        ("dog food", "a balanced diet for adult dogs"),
        ("cat litter", "a clean litter box without odours"),
        ("dog leash", "walking a dog safely"),
        ("scratching post", "a cat sharpening its claws"),
        ("pet bed", "a cosy place for a dog or cat to sleep"),
        ("chew toy", "keeping a puppy busy"),
        ("aquarium filter", "clean water for pet fish"),
        ("bird feeder", "feeding birds in the garden"),
        ("dog shampoo", "bathing a dog's coat"),
        ("cat treats", "rewarding a cat"),
    ]),
    "fitness": (["adjustable", "non-slip", "professional"], [
        ("yoga mat", "yoga and stretching at home"),
        ("dumbbells", "strength training and lifting weights"),
        ("running shoes", "jogging and marathon training"),
        ("tennis racket", "playing tennis matches"),
        ("football", "playing soccer in the park"),
        ("swim goggles", "swimming laps in the pool"),
        ("bike helmet", "protecting the head while cycling"),
        ("resistance bands", "home workouts and physiotherapy"),
        ("jump rope", "cardio workouts"),
        ("sports water bottle", "staying hydrated at the gym"),
    ]),
    "personal care": (["sensitive-skin", "fragrance-free", "travel-size"], [
        ("shampoo", "washing hair"),
        ("conditioner", "soft, detangled hair"),
        ("face moisturiser", "hydrating dry facial skin"),
        ("sunscreen", "protecting skin from sunburn"),
        ("electric toothbrush", "cleaning teeth and gums"),
        ("bath towel", "drying off after a shower"),
        ("razor", "a close shave"),
        ("body wash", "cleansing in the shower"),
        ("lip balm", "soothing chapped lips"),
        ("hand cream", "softening rough hands in winter"),
    ]),
    "office": (["recycled", "premium", "bulk"], [
        ("notebook", "writing notes in meetings"),
        ("ballpoint pens", "everyday writing"),
        ("desk lamp", "lighting a desk for reading late"),
        ("stapler", "binding sheets of paper"),
        ("office chair", "sitting comfortably through a workday"),
        ("whiteboard", "planning and brainstorming with markers"),
        ("sticky notes", "reminders on a monitor"),
        ("file folders", "organising paper documents"),
        ("printer paper", "printing documents"),
        ("desk organiser", "keeping pens and clips tidy"),
    ]),
    "grocery": (["organic", "fair-trade", "family-pack"], [
        ("coffee beans", "brewing espresso and filter coffee"),
        ("green tea", "a calming hot drink"),
        ("dark chocolate", "a sweet treat with cocoa"),
        ("olive oil", "cooking and salad dressing"),
        ("dried pasta", "spaghetti and penne dinners"),
        ("honey", "sweetening tea and toast"),
        ("granola", "breakfast with yoghurt"),
        ("basmati rice", "curries and side dishes"),
        ("spice set", "seasoning curries and stews"),
        ("oat milk", "a dairy-free milk for coffee and cereal"),
    ]),
}


def main() -> None:
    path = Path(__file__).with_name("catalogue.csv")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["sku", "department", "product", "name", "description"])
        sku = 1000
        for department, (variants, products) in DEPARTMENTS.items():
            for product, purpose in products:
                for variant in variants:
                    sku += 1
                    writer.writerow([f"SKU{sku}", department, product, f"{variant} {product}",
                                     f"A {variant} {product} for {purpose}."])
    print(f"wrote {path}: {sku - 1000} products")


if __name__ == "__main__":
    main()
